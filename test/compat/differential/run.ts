// Runs one operation sequence against two clusters in lockstep (etcd, the reference, and Tessera)
// over the same raw gRPC client, and compares every response field by field (compare.ts).
// Each op is resolved against the reference's state (current and compacted revision) so both
// clusters get the same request even after they disagree; only lease IDs are resolved per cluster.
import type { CallError } from '../../api/client.ts';
import { EtcdClient } from '../../api/client.ts';
import { compareOutcomes, compareWatchLogs } from './compare.ts';
import type { Mismatch, Outcome, SideView } from './compare.ts';
import { LEASE_ID_BASE, WATCH_STREAMS } from './ops.ts';
import type { Op, Req } from './ops.ts';

/** How long a watch stream must stay silent before its log counts as complete. */
const WATCH_QUIET_MS = 400;
/**
 * etcd replays history to a new watcher from a sync loop that runs every 100 ms; Tessera at once.
 * A compaction or a cancel in between changes what etcd's watcher gets, so those ops wait this
 * long after the last watch create.
 */
const WATCH_SYNC_WAIT_MS = 300;
/** The longest a watch check waits for silence. */
const WATCH_SETTLE_MAX_MS = 8_000;
const CALL_DEADLINE_MS = 15_000;
const BYTE_FIELDS = new Set(['key', 'rangeEnd', 'value']);

/** What the reference cluster's answers so far say about its state. */
interface Reference {
  /** Current revision (the largest header revision seen). */
  revision: number;
  /** Last successful compaction; -1 before any, as etcd's compactMainRev. */
  compacted: number;
}

/** One entry of a watcher's log: an event, or the response that canceled it. */
export type WatchEntry =
  | { type: 'event'; event: Record<string, unknown> }
  | { type: 'canceled'; response: Record<string, unknown> };

class WatchSession {
  private readonly call: any;
  private readonly createWaiters: ((response: any) => void)[] = [];
  /** Watch ID -> index of the create op it belongs to (the latest create with that ID). */
  private readonly owners = new Map<string, number>();
  readonly logs = new Map<number, WatchEntry[]>();
  lastMessageAt = Date.now();
  failure: string | null = null;

  constructor(client: EtcdClient) {
    this.call = client.service('Watch').watch();
    this.call.on('data', (message: any) => this.onMessage(message));
    this.call.on('error', (error: CallError) => {
      if (error.code !== 1) this.failure ??= `stream failed: ${error.code} ${error.details}`;
    });
  }

  private onMessage(message: any): void {
    if (this.failure !== null) return;
    this.lastMessageAt = Date.now();
    if (message.created) {
      const waiter = this.createWaiters.shift();
      if (waiter) waiter(message);
      else this.failure = `unexpected created response ${JSON.stringify(message)}`;
      return;
    }
    const owner = this.owners.get(String(message.watchId));
    if (owner === undefined) return; // progress responses, or cancels of unknown IDs (etcd sends none)
    const log = this.logs.get(owner)!;
    for (const event of message.events) log.push({ type: 'event', event });
    if (message.canceled) {
      log.push({ type: 'canceled', response: message });
      this.owners.delete(String(message.watchId));
    }
  }

  create(opIndex: number, req: Req): Promise<any> {
    if (this.failure !== null) return Promise.reject(new Error(`watch stream is gone (${this.failure})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no created response within 10 s')), 10_000);
      this.createWaiters.push((response) => {
        clearTimeout(timer);
        this.logs.set(opIndex, []);
        if (!response.canceled) this.owners.set(String(response.watchId), opIndex);
        resolve(response);
      });
      this.call.write({ createRequest: req });
    });
  }

  cancel(watchId: string): void {
    this.call.write({ cancelRequest: { watchId } });
  }

  close(): void {
    this.call.cancel();
  }
}

/** One cluster under test: its clients (one per member), watch streams, and the lease IDs it handed out. */
class Side implements SideView {
  readonly clients: EtcdClient[];
  readonly sessions: WatchSession[];
  /** Lease slot -> ID this cluster granted for it (slots granted with ID 0). */
  readonly leaseSlots = new Map<number, string>();
  /** This cluster's lease ID -> the reference's ID for the same slot. */
  readonly leaseAliases = new Map<string, string>();
  /** Create op index -> the watch ID this cluster assigned. */
  readonly watchIds = new Map<number, string>();

  constructor(
    readonly name: string,
    endpoints: string[],
  ) {
    this.clients = endpoints.map((endpoint) => new EtcdClient(endpoint));
    this.sessions = Array.from({ length: WATCH_STREAMS }, (_, s) => new WatchSession(this.clients[s % this.clients.length]));
  }

  leaseId(slot: number): string {
    if (slot % 2 === 0) return String(LEASE_ID_BASE + slot);
    return this.leaseSlots.get(slot) ?? String(LEASE_ID_BASE + 100 + slot); // never granted: an unknown ID
  }

  mapLease(id: string): string {
    return this.leaseAliases.get(id) ?? id;
  }

  close(): void {
    for (const session of this.sessions) session.close();
    for (const client of this.clients) client.close();
  }
}

/** Replaces the placeholders of ops.ts with values for `side`. */
export function resolve(value: unknown, ref: Reference, side: Side, field = ''): unknown {
  if (typeof value === 'string') {
    const revision = /^\$(rev|compact)([+-]\d+)?$/.exec(value);
    if (revision !== null) return (revision[1] === 'rev' ? ref.revision : ref.compacted) + Number(revision[2] ?? 0);
    const readable = /^\$readable-(\d+)$/.exec(value);
    if (readable !== null) return Math.max(ref.revision - Number(readable[1]), ref.compacted, 1);
    const lease = /^\$lease:(\d+)$/.exec(value);
    if (lease !== null) return side.leaseId(Number(lease[1]));
    const big = /^\$big:(\d+)$/.exec(value);
    if (big !== null) return Buffer.alloc(Number(big[1]), 'v');
    return BYTE_FIELDS.has(field) ? Buffer.from(value, 'latin1') : value;
  }
  if (Array.isArray(value)) return value.map((item) => resolve(item, ref, side, field));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // An empty bytes field is left out, as Go clients (gogoproto) do: protobufjs would send it
      // present-but-empty, which etcd reads as a non-nil empty range_end, i.e. "every key >= key".
      if (BYTE_FIELDS.has(key) && item === '') continue;
      out[key] = resolve(item, ref, side, key);
    }
    return out;
  }
  return value;
}

const UNARY: Record<string, [string, string]> = {
  put: ['KV', 'put'],
  range: ['KV', 'range'],
  deleteRange: ['KV', 'deleteRange'],
  txn: ['KV', 'txn'],
  compact: ['KV', 'compact'],
  leaseGrant: ['Lease', 'leaseGrant'],
  leaseRevoke: ['Lease', 'leaseRevoke'],
  leaseTimeToLive: ['Lease', 'leaseTimeToLive'],
  leaseLeases: ['Lease', 'leaseLeases'],
  hashKV: ['Maintenance', 'hashKV'],
};

async function settle<T>(promise: Promise<T>): Promise<Outcome> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    const e = error as CallError;
    return { ok: false, code: e.code ?? -1, details: e.details ?? e.message };
  }
}

function keepAlive(client: EtcdClient, id: unknown): Promise<unknown> {
  const call = client.service('Lease').leaseKeepAlive({ deadline: Date.now() + CALL_DEADLINE_MS });
  return new Promise((resolve, reject) => {
    call.once('data', (response: unknown) => {
      call.end();
      resolve(response);
    });
    call.once('error', reject);
    call.write({ ID: id });
  });
}

/**
 * Ops whose response header etcd fills from the receiving member's own state, not through Raft or
 * a linearizable read: a follower may not have applied the last write yet. A barrier first.
 */
const LOCAL_HEADER_OPS = new Set<Op['kind']>(['leaseKeepAlive', 'leaseTimeToLive', 'leaseLeases', 'hashKV']);

/** Runs one op on one side; watch checks are done by the runner, not here. */
async function execute(op: Op, index: number, req: Req | null, side: Side): Promise<Outcome> {
  if ('member' in op && LOCAL_HEADER_OPS.has(op.kind)) {
    const failed = await settle(barrier(side, op.member));
    if (!failed.ok) return failed;
  }
  switch (op.kind) {
    case 'watchCreate': {
      const failed = await settle(barrier(side, op.stream));
      if (!failed.ok) return failed;
      const outcome = await settle(side.sessions[op.stream].create(index, req!));
      if (outcome.ok) side.watchIds.set(index, String((outcome.value as any).watchId));
      return outcome;
    }
    case 'watchCancel': {
      const failed = await settle(barrier(side, op.stream));
      if (!failed.ok) return failed;
      const id = op.watch === 'unknown' ? '999999' : (side.watchIds.get(op.watch) ?? '999999');
      side.sessions[op.stream].cancel(id);
      return { ok: true, value: {} };
    }
    case 'watchCheck':
      return { ok: true, value: {} };
    case 'sleep':
      await new Promise((r) => setTimeout(r, op.ms));
      return { ok: true, value: {} };
    case 'leaseKeepAlive':
      return settle(keepAlive(side.clients[op.member], req!.ID));
    default: {
      const [service, method] = UNARY[op.kind];
      return settle(side.clients[op.member].call(service as any, method, req!, CALL_DEADLINE_MS));
    }
  }
}

/**
 * A linearizable read on `member` (watch stream s lives on member s % 3): afterwards that member
 * has applied every write acknowledged so far, so the revision in headers it fills locally is
 * current (an etcd follower may otherwise answer with the revision before the last write).
 */
async function barrier(side: Side, member: number): Promise<void> {
  await side.clients[member % side.clients.length].call('KV', 'range', { key: Buffer.from('barrier') }, CALL_DEADLINE_MS);
}

/** Waits until every watch stream of `side` has been silent for WATCH_QUIET_MS (bounded). */
async function quiesce(side: Side): Promise<void> {
  const deadline = Date.now() + WATCH_SETTLE_MAX_MS;
  for (;;) {
    const last = Math.max(...side.sessions.map((s) => s.lastMessageAt));
    const quietFor = Date.now() - last;
    if (quietFor >= WATCH_QUIET_MS || Date.now() >= deadline) return;
    await new Promise((r) => setTimeout(r, WATCH_QUIET_MS - quietFor));
  }
}

/** What a watcher was created with, for comparing its log. */
export interface WatchCreateInfo {
  startRevision: number;
}

export interface RunResult {
  ops: number;
  mismatches: Mismatch[];
  /** Documented divergences seen, by name, with how many ops showed each. */
  divergences: Map<string, number>;
  referenceRevision: number;
  /** Watch streams that failed (their watchers' logs stop there). */
  streamFailures: string[];
}

export interface RunOptions {
  /** Called after each op (progress output). */
  onOp?: (index: number, op: Op) => void;
  /** Called with every op's resolved reference request and both answers (debugging). */
  onTrace?: (index: number, op: Op, request: Req | null, expected: Outcome, actual: Outcome) => void;
  /** Stop after this many mismatches (the rest of the run would mostly repeat them). */
  maxMismatches?: number;
}

/** Runs `ops` in lockstep against the reference endpoints and the candidate endpoints. */
export async function runDifferential(
  ops: Op[],
  referenceEndpoints: string[],
  candidateEndpoints: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const reference = new Side('etcd', referenceEndpoints);
  const candidate = new Side('tessera', candidateEndpoints);
  const ref: Reference = { revision: 1, compacted: -1 };
  const compactions = new Set<number>();
  const watches = new Map<number, WatchCreateInfo>();
  let lastWatchCreateAt = 0;
  const mismatches: Mismatch[] = [];
  const divergences = new Map<string, number>();
  const record = (found: Mismatch[], seen: string[]) => {
    mismatches.push(...found);
    for (const name of seen) divergences.set(name, (divergences.get(name) ?? 0) + 1);
  };
  const maxMismatches = options.maxMismatches ?? 50;
  try {
    for (let index = 0; index < ops.length && mismatches.length < maxMismatches; index++) {
      const op = ops[index];
      if (op.kind === 'watchCheck') {
        await Promise.all([quiesce(reference), quiesce(candidate)]);
        const result = compareWatchLogs(index, reference, candidate, watches, compactions);
        record(result.mismatches, result.divergences);
        options.onOp?.(index, op);
        continue;
      }
      const source = op.kind === 'watchCancel' || op.kind === 'sleep' ? null : (op.req as Req);
      const reqs = [reference, candidate].map((side) => (source === null ? null : (resolve(source, ref, side) as Req)));
      if (op.kind === 'compact' || op.kind === 'watchCancel') {
        const wait = lastWatchCreateAt + WATCH_SYNC_WAIT_MS - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (op.kind === 'watchCreate') {
        // etcd 3.4 bug (docs/COMPATIBILITY.md, D16): before any compaction a watch from -1 makes
        // the other watchers waiting for their replay skip it. -2 is compacted and harmless.
        for (const req of reqs) if (req!.startRevision === -1 && ref.compacted === -1) req!.startRevision = -2;
        watches.set(index, { startRevision: Number(reqs[0]!.startRevision ?? 0) });
      }
      const [expected, actual] = await Promise.all([
        execute(op, index, reqs[0], reference),
        execute(op, index, reqs[1], candidate),
      ]);
      options.onTrace?.(index, op, reqs[0], expected, actual);
      if (op.kind === 'watchCreate') lastWatchCreateAt = Date.now();
      if (op.kind === 'compact' && expected.ok) compactions.add(Number(reqs[0]!.revision));
      learn(op, reqs, expected, actual, ref, reference, candidate);
      const result = compareOutcomes(index, op, reqs[0], expected, actual, candidate);
      record(result.mismatches, result.divergences);
      options.onOp?.(index, op);
    }
  } finally {
    reference.close();
    candidate.close();
  }
  const streamFailures = [reference, candidate].flatMap((side) =>
    side.sessions.flatMap((session, s) => (session.failure === null ? [] : [`${side.name} watch stream ${s}: ${session.failure}`])),
  );
  return { ops: ops.length, mismatches, divergences, referenceRevision: ref.revision, streamFailures };
}

/** Updates the reference state and the per-cluster lease IDs from one op's answers. */
function learn(op: Op, reqs: (Req | null)[], expected: Outcome, actual: Outcome, ref: Reference, reference: Side, candidate: Side): void {
  if (expected.ok) {
    const revision = Number((expected.value as any)?.header?.revision ?? 0);
    if (revision > ref.revision) ref.revision = revision;
    if (op.kind === 'compact') ref.compacted = Number(reqs[0]!.revision);
  }
  if (op.kind !== 'leaseGrant' || op.slot === null) return;
  const ids = [expected, actual].map((outcome) => (outcome.ok ? String((outcome.value as any).ID) : null));
  if (ids[0] !== null) reference.leaseSlots.set(op.slot, ids[0]);
  if (ids[1] !== null) candidate.leaseSlots.set(op.slot, ids[1]);
  if (ids[0] !== null && ids[1] !== null) candidate.leaseAliases.set(ids[1], ids[0]);
}
