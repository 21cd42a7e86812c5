// The replica's state image inside a Raft snapshot, and how it is built a piece at a time.
//
// Format 2 (written since session 3): the magic "TSI2", then frames of [u32 BE length][bytes].
// Frame 0 is msgpack of the replicated extras (alarms, members, removed, auth, lease renewals);
// every later frame is one MVCC chunk (mvcc/snapshot.ts). Frames can be produced one at a time and
// joined with one copy, unlike format 1 (still read): one msgpack map holding every chunk, which
// needed the whole image in memory twice and a full re-encode to build.
import { Packr } from 'msgpackr';
import { MvccStore, SnapshotInvalidatedError } from '../mvcc/index.ts';
import { assert, EtcdError, GrpcCode } from '../util/index.ts';
import { AuthStore } from './auth-store.ts';
import type { AuthImage } from './auth-store.ts';
import type { Member } from './members.ts';

/** Replicated state beside the MVCC store: what every replica agrees on through the log. */
export interface ReplicatedState {
  store: MvccStore;
  /** Active alarms, as `memberId:alarm` (etcd's alarm store). */
  alarms: Set<string>;
  /** The group's members with their addresses (etcd's membership store). */
  members: Map<number, Member>;
  /** IDs removed from the group; never reused (a removed member may still hold old state). */
  removed: Set<number>;
  /** Users, roles, permissions (etcd's auth store); password hashes only. */
  auth: AuthStore;
  /** Log index of each lease's last grant or keepalive: an expiry decided before it is void. */
  leaseRenewedAt: Map<number, number>;
}

/** MVCC chunks a backup encodes between two yields to the event loop (buildSnapshotData). */
const CHUNKS_PER_YIELD = 4;

/** Upper bound of one MVCC chunk (a single larger key version makes a larger one). */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

const MAGIC = Buffer.from('TSI2', 'latin1');
const FRAME_HEADER_BYTES = 4;

const packr = new Packr({ useRecords: false });

interface Extras {
  alarms: string[];
  members: Member[];
  removed: number[];
  auth?: AuthImage;
  /** [lease id, log index] pairs. */
  leaseRenewedAt?: [number, number][];
}

/** Format 1: everything in one msgpack map. */
interface ImageV1 extends Extras {
  version: 1;
  mvcc: Uint8Array[];
}

function extrasOf(state: ReplicatedState): Extras {
  return {
    alarms: [...state.alarms],
    members: [...state.members.values()],
    removed: [...state.removed],
    auth: state.auth.image(),
    leaseRenewedAt: [...state.leaseRenewedAt],
  };
}

/**
 * Builds the image of `state` as it is when constructed, a few chunks per `step`, so a node can
 * spread a large snapshot over many loop turns while it keeps applying writes (MvccStore's chunks
 * stay valid across writes), and write it a piece at a time (`take`: the pieces, in order, are
 * the image). Steps are counted in chunks, not time, so simulation stays
 * deterministic. A compaction or a restore in between invalidates the build: `step` then throws
 * mvcc's SnapshotInvalidatedError and the caller starts a new one.
 */
export class SnapshotBuilder {
  /** Frames encoded and not yet taken. */
  private pending: Uint8Array[];
  private readonly chunks: Iterator<Uint8Array>;
  private taken = 0;
  private chunkTotal = 0;
  private done = false;

  constructor(state: ReplicatedState, chunkBytes = SNAPSHOT_CHUNK_BYTES) {
    this.pending = [packr.pack(extrasOf(state))]; // packed now: the extras are as of this moment
    this.chunks = state.store.snapshotChunks(chunkBytes)[Symbol.iterator]();
  }

  /** MVCC chunks encoded so far. */
  get chunkCount(): number {
    return this.chunkTotal;
  }

  /** Bytes of the image taken so far. */
  get byteLength(): number {
    return this.taken;
  }

  /** Encodes up to `maxChunks` more chunks; true once every chunk is done. */
  step(maxChunks: number): boolean {
    for (let i = 0; i < maxChunks && !this.done; i++) {
      const next = this.chunks.next();
      if (next.done === true) this.done = true;
      else {
        this.pending.push(next.value);
        this.chunkTotal += 1;
      }
    }
    return this.done;
  }

  /** The image's next bytes: everything encoded since the last take (the first take starts with the magic). */
  take(): Uint8Array {
    const bytes = joinFrames(this.pending, this.taken === 0);
    this.pending = [];
    this.taken += bytes.length;
    return bytes;
  }
}

/**
 * The whole image of `state` (as pieces, in order), encoded a few chunks per macrotask so the node
 * keeps serving while a backup of a large state is made (Maintenance.Snapshot). `capture` runs synchronously with the
 * build's start, for what must describe the same moment (the applied index). A compaction in
 * between restarts the build, at most `attempts` times.
 */
export async function buildSnapshotData<T>(state: ReplicatedState, capture: () => T, attempts = 3): Promise<{ pieces: Uint8Array[]; captured: T }> {
  for (let attempt = 1; ; attempt++) {
    const builder = new SnapshotBuilder(state);
    const captured = capture();
    const pieces: Uint8Array[] = [];
    try {
      while (!builder.step(CHUNKS_PER_YIELD)) {
        pieces.push(builder.take());
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      if (!(error instanceof SnapshotInvalidatedError) || attempt >= attempts) throw error;
      continue;
    }
    pieces.push(builder.take());
    return { pieces, captured }; // the image is the pieces in order; not joined, so it is never held twice
  }
}

/** Each frame behind its length (after the magic, when `first`), copied once into one buffer. */
function joinFrames(frames: Uint8Array[], first: boolean): Uint8Array {
  const head = first ? MAGIC.length : 0;
  const out = Buffer.allocUnsafe(head + frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.length, 0));
  if (first) MAGIC.copy(out, 0);
  let offset = head;
  for (const frame of frames) {
    out.writeUInt32BE(frame.length, offset);
    out.set(frame, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + frame.length;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The whole image of `state` at once (backups, tests). */
export function encodeSnapshotData(state: ReplicatedState): Uint8Array {
  const builder = new SnapshotBuilder(state);
  builder.step(Number.MAX_SAFE_INTEGER);
  return builder.take();
}

function corrupt(why: string): EtcdError {
  return new EtcdError(GrpcCode.DATA_LOSS, `tessera: corrupt snapshot image: ${why}`);
}

function isFormat2(data: Uint8Array): boolean {
  return data.length >= MAGIC.length && MAGIC.equals(data.subarray(0, MAGIC.length));
}

/** Format 2's frames as views into `data`: the extras, then the MVCC chunks. */
function framesOf(data: Uint8Array): { extras: Uint8Array; chunks: Uint8Array[] } {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const frames: Uint8Array[] = [];
  let offset = MAGIC.length;
  while (offset < data.length) {
    if (offset + FRAME_HEADER_BYTES > data.length) throw corrupt('truncated frame header');
    const length = view.readUInt32BE(offset);
    const start = offset + FRAME_HEADER_BYTES;
    if (start + length > data.length) throw corrupt(`frame of ${length} bytes runs past the end`);
    frames.push(data.subarray(start, start + length));
    offset = start + length;
  }
  if (frames.length === 0) throw corrupt('no extras frame');
  return { extras: frames[0], chunks: frames.slice(1) };
}

function decodeImage(data: Uint8Array): { extras: Extras; chunks: Uint8Array[] } {
  if (isFormat2(data)) {
    const { extras, chunks } = framesOf(data);
    return { extras: packr.unpack(extras) as Extras, chunks };
  }
  const image = packr.unpack(data) as ImageV1;
  assert(image.version === 1 && Array.isArray(image.mvcc), 'snapshot data is not a Tessera state image');
  return { extras: image, chunks: image.mvcc };
}

/** Decodes an image (either format); an empty one is a group with no snapshot yet (its members come from the log). */
export function decodeSnapshotData(data: Uint8Array): ReplicatedState {
  if (data.length === 0) {
    return {
      store: new MvccStore(),
      alarms: new Set(),
      members: new Map(),
      removed: new Set(),
      auth: new AuthStore(),
      leaseRenewedAt: new Map(),
    };
  }
  const { extras, chunks } = decodeImage(data);
  return {
    store: MvccStore.restore(chunks),
    alarms: new Set(extras.alarms),
    members: new Map(extras.members.map((m) => [m.id, m])),
    removed: new Set(extras.removed),
    auth: AuthStore.restore(extras.auth),
    leaseRenewedAt: new Map(extras.leaseRenewedAt ?? []),
  };
}

/** The same image (written in format 2) with another membership (restoring a backup into a new cluster). */
export function replaceMembers(data: Uint8Array, members: Member[]): Uint8Array {
  const { extras, chunks } = decodeImage(data);
  return joinFrames([packr.pack({ ...extras, members, removed: [] }), ...chunks], true);
}
