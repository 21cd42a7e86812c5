// What a state-machine snapshot of a large keyspace costs, in one process (no cluster): building
// the image (the MVCC chunks plus the replicated extras), restoring it (what a restarting node or
// a follower installing a snapshot pays), and the command batch codec of the write path.
// CPU time is process.cpuUsage() (all threads, GC included), so it holds up on a busy machine.
//   npx tsx bench/snapshot.ts [--keys N] [--value-bytes B] [--runs R]
import { randomBytes } from 'node:crypto';
import { MvccStore } from '../src/mvcc/index.ts';
import { AuthStore } from '../src/server/auth-store.ts';
import { decodeBatch, encodeBatch } from '../src/server/commands.ts';
import type { ProposedCommand } from '../src/server/commands.ts';
import { decodeSnapshotData, SnapshotBuilder } from '../src/server/snapshots.ts';

const args = process.argv.slice(2);
const option = (flag: string, fallback: number) => {
  const i = args.indexOf(flag);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const keys = option('--keys', 300_000);
const valueBytes = option('--value-bytes', 256);
const runs = option('--runs', 3);

/** CPU and wall milliseconds of `run`. */
function measure<T>(run: () => T): { cpuMs: number; wallMs: number; result: T } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = run();
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0, result };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const store = new MvccStore();
const noise = randomBytes(valueBytes * 1024); // random (incompressible) values, as in the compare run
for (let i = 0; i < keys; i++) {
  const at = (i * valueBytes) % (noise.length - valueBytes);
  store.put({ key: Buffer.from(`key${String(i).padStart(12, '0')}`), value: noise.subarray(at, at + valueBytes), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
}
const state = { store, alarms: new Set<string>(), members: new Map(), removed: new Set<number>(), auth: new AuthStore(), leaseRenewedAt: new Map<number, number>() };

const build: number[] = [];
const restore: number[] = [];
let imageBytes = 0;
let chunks = 0;
for (let r = 0; r < runs; r++) {
  const built = measure(() => {
    const builder = new SnapshotBuilder(state);
    builder.step(Number.MAX_SAFE_INTEGER);
    chunks = builder.chunkCount;
    return builder.take();
  });
  build.push(built.cpuMs);
  imageBytes = built.result.length;
  const restored = measure(() => decodeSnapshotData(built.result));
  assert(restored.result.store.keyCount === keys);
  restore.push(restored.cpuMs);
}
console.log(`${keys} keys × ${valueBytes} B: image ${(imageBytes / 2 ** 20).toFixed(1)} MiB in ${chunks} chunks`);
console.log(`  build   CPU ${median(build).toFixed(0)} ms (median of ${runs}: ${build.map((v) => v.toFixed(0)).join(', ')})`);
console.log(`  restore CPU ${median(restore).toFixed(0)} ms (median of ${runs}: ${restore.map((v) => v.toFixed(0)).join(', ')})`);

// The write path's command batches: 17 puts of 256 B (a typical entry under a 100-client put load).
const commands: ProposedCommand[] = Array.from({ length: 17 }, (_, i) => ({
  id: i + 1,
  cmd: { op: 'put', req: { key: Buffer.from(`key${String(i).padStart(12, '0')}`), value: randomBytes(256), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } },
}));
const batch = { origin: 123456789, incarnation: 987654, commands };
const rounds = 20_000;
const encoded = encodeBatch(batch);
const enc = measure(() => {
  for (let i = 0; i < rounds; i++) encodeBatch(batch);
});
const dec = measure(() => {
  for (let i = 0; i < rounds; i++) decodeBatch(encoded);
});
console.log(`command batch of 17 puts: ${encoded.length} bytes; encode ${((enc.cpuMs * 1000) / rounds).toFixed(1)} µs, decode ${((dec.cpuMs * 1000) / rounds).toFixed(1)} µs (CPU)`);

function assert(condition: boolean): void {
  if (!condition) throw new Error('restore lost keys');
}
