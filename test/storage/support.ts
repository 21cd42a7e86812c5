// Shared helpers for the storage tests: temporary directories, entries, a seeded generator.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfState, Entry } from '../../src/raft/index.ts';
import { NodeStorage } from '../../src/storage/index.ts';
import type { NodeStorageOptions } from '../../src/storage/index.ts';

/** A fresh directory under the OS temp dir; `cleanup` removes it. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-storage-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = tempDir();
  try {
    return await body(dir);
  } finally {
    cleanup();
  }
}

/** Runs `body` with NodeStorage open on `dir`, closed afterwards. */
export async function withStorage<T>(dir: string, body: (s: NodeStorage) => Promise<T> | T, options: Partial<NodeStorageOptions> = {}): Promise<T> {
  const storage = NodeStorage.open({ dataDir: dir, ...options });
  try {
    return await body(storage);
  } finally {
    await storage.close();
  }
}

/** Deterministic payload: `size` bytes derived from (index, term, salt). */
export function payload(index: number, term: number, size: number, salt = 0): Uint8Array {
  const data = new Uint8Array(size);
  let x = (index * 2654435761 + term * 40503 + salt * 97) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function entry(index: number, term: number, size = 16, salt = 0): Entry {
  return { index, term, type: index % 7 === 0 ? 'conf' : 'normal', data: payload(index, term, size, salt) };
}

export function confState(voters: number[]): ConfState {
  return { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

/** mulberry32: small, fast, seeded. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}
