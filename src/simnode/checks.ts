// The checks of a whole-node run. Cheap ones run while it goes (replicas that applied the same
// revision hold the same data); the rest at the end: the history is linearizable (per key, with
// unknown outcomes), revisions respect real time, every acknowledged write is in the final history
// at the revision its response named (and nothing is applied twice or despite a definite failure),
// every replica converged to the same state, and no lease expired before its TTL ran out.
import { checkLinearizable, textReport } from '../chaos/index.ts';
import type { CheckResult, Model, Operation } from '../chaos/index.ts';
import type { WatchEvent } from '../mvcc/index.ts';
import type { Replica } from '../server/index.ts';
import { SimFailure } from './cluster.ts';
import type { KnownBug, LeaseClockEvent } from './cluster.ts';
import type { History, KvOp, KvOutput, LeaseOp, SimOp } from './history.ts';
import { kvModel, leaseModel, toOperations } from './history.ts';
import type { LeaseGone } from './workload.ts';

/** The linearizability search's budget per model; past it the verdict is `unknown`, which fails the seed. */
const CHECK_TIMEOUT_MS = 20_000;
const CHECK_MAX_CACHE_ENTRIES = 1_000_000;

/**
 * What the replicas applied: the revision each value was put at (values are unique). With
 * `complete`, a value it does not hold was never applied anywhere; otherwise only values put above
 * `compactedRevision` are known (evidence taken from a store's history).
 */
export interface WriteEvidence {
  putAt: ReadonlyMap<string, number>;
  complete: boolean;
  compactedRevision: number;
}

/** Evidence from one store's history (what it still holds above its compaction). */
export function writeEvidence(events: readonly WatchEvent[], compactedRevision: number): WriteEvidence {
  const putAt = new Map<string, number>();
  for (const event of events) if (event.type === 'put') putAt.set(text(event.kv.value), event.kv.modRevision);
  return { putAt, complete: false, compactedRevision };
}

/**
 * Settles unknown writes with the final history (values are unique): one whose value it does not
 * hold (and could hold: called above the compaction) never took effect; one it holds at revision r
 * took effect by the time any op that saw revision r or newer returned. Deletes stay unknown.
 */
function resolver(history: History, evidence: WriteEvidence | null): (op: KvOp | LeaseOp) => { drop: true } | { drop: false; ret: number } | null {
  const seen = [...history.kv, ...history.lease].filter((op) => op.status === 'ok' && op.revision > 0).sort((a, b) => a.revision - b.revision);
  const earliestFrom: number[] = new Array<number>(seen.length + 1).fill(Infinity);
  for (let i = seen.length - 1; i >= 0; i--) earliestFrom[i] = Math.min(seen[i].retSeq, earliestFrom[i + 1]);
  const seenBy = (revision: number): number => {
    let lo = 0;
    let hi = seen.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seen[mid].revision < revision) lo = mid + 1;
      else hi = mid;
    }
    return earliestFrom[lo];
  };
  return (op) => {
    if (evidence === null) return null;
    const write = written(op);
    if (write === null || write.value === null) return null;
    const at = evidence.putAt.get(write.value);
    if (at === undefined) return evidence.complete || op.floorRevision >= evidence.compactedRevision ? { drop: true } : null;
    const ret = seenBy(at);
    return ret === Infinity || ret < op.callSeq ? null : { drop: false, ret };
  };
}

function checkModel<S, I, O>(name: string, model: Model<S, I, O>, ops: Operation<I, O>[]): void {
  const result: CheckResult<I, O> = checkLinearizable(model, ops, {
    timeoutMs: CHECK_TIMEOUT_MS,
    maxCacheEntries: CHECK_MAX_CACHE_ENTRIES,
  });
  if (result.verdict === 'ok') return;
  const what = result.verdict === 'illegal' ? 'not linearizable' : 'could not be decided within the checker budget';
  throw new SimFailure('linearizability', `the ${name} history is ${what}\n${textReport(model, result, 1)}`);
}

/** Per key (and per lease), with unknown outcomes; `evidence` (the final history) settles unknown writes. */
export function checkLinearizability(history: History, evidence: WriteEvidence | null = null): void {
  const resolve = resolver(history, evidence);
  checkModel(
    'kv',
    kvModel,
    toOperations(history.kv, (op) => {
      const r = resolve(op);
      if (r === null || r.drop) return r;
      const output: KvOutput = op.input.f === 'cas' ? { succeeded: true } : { written: true };
      return { drop: false, output, ret: r.ret };
    }),
  );
  checkModel(
    'lease',
    leaseModel,
    toOperations(history.lease, (op) => {
      const r = resolve(op);
      return r === null || r.drop ? r : { drop: false, output: { done: true }, ret: r.ret };
    }),
  );
}

/**
 * Revisions are one total order that respects real time: an op that starts after another ended
 * sees at least its revision, and a write gets a newer one. Every write has its own revision.
 */
export function checkRevisionOrder(history: History): void {
  const ops: SimOp<unknown, unknown>[] = [...history.kv, ...history.lease].filter((op) => op.status === 'ok' && op.revision > 0);
  const byRevision = new Map<number, SimOp<unknown, unknown>>();
  for (const op of ops) {
    if (!op.wrote) continue;
    const other = byRevision.get(op.revision);
    if (other !== undefined) {
      throw new SimFailure('revision order', `ops #${other.id} and #${op.id} both wrote revision ${op.revision}`);
    }
    byRevision.set(op.revision, op);
  }
  const returns = ops.slice().sort((a, b) => a.retSeq - b.retSeq);
  const calls = ops.slice().sort((a, b) => a.callSeq - b.callSeq);
  let next = 0;
  let newest: SimOp<unknown, unknown> | null = null;
  for (const op of calls) {
    while (next < returns.length && returns[next].retSeq < op.callSeq) {
      if (newest === null || returns[next].revision > newest.revision) newest = returns[next];
      next++;
    }
    if (newest === null) continue;
    const stale = op.wrote ? op.revision <= newest.revision : op.revision < newest.revision;
    if (stale) {
      throw new SimFailure(
        'revision order',
        `op #${op.id} (n${op.node}, ${describe(op)}) started at ${op.callMs}ms after op #${newest.id} (n${newest.node}, ${describe(newest)}) ` +
          `ended at ${newest.retMs}ms with revision ${newest.revision}, yet answered revision ${op.revision}`,
        op.retMs,
      );
    }
  }
}

function describe(op: SimOp<unknown, unknown>): string {
  return JSON.stringify(op.input);
}

/** The store's whole event history from the oldest revision it still holds. */
export function eventHistory(replica: Replica): WatchEvent[] {
  const store = replica.store;
  const events: WatchEvent[] = [];
  const start = Math.max(1, store.compactedRevision + 1);
  if (start > store.currentRevision) return events;
  const handle = store.watch(
    { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), startRevision: start, noPut: false, noDelete: false, prevKv: false },
    (batch) => {
      events.push(...batch);
    },
  );
  handle.cancel();
  return events;
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString();
}

/**
 * Acknowledged writes are in the final history at the revision their response named; no value is
 * written twice; and no write whose failure was definite took effect.
 */
export function checkWrites(history: History, events: readonly WatchEvent[], compactedRevision: number, applied: ReadonlyMap<string, number> | null = null): void {
  if (applied !== null) checkAppliedAt(history, applied);
  const atRevision = new Map<number, WatchEvent[]>();
  const putsOf = new Map<string, number[]>();
  for (const event of events) {
    const list = atRevision.get(event.kv.modRevision) ?? [];
    list.push(event);
    atRevision.set(event.kv.modRevision, list);
    if (event.type === 'put') {
      const value = text(event.kv.value);
      putsOf.set(value, [...(putsOf.get(value) ?? []), event.kv.modRevision]);
    }
  }
  for (const [value, revisions] of putsOf) {
    if (revisions.length > 1) {
      const detail = revisions
        .flatMap((rev) => (atRevision.get(rev) ?? []).map((e) => `rev ${rev}: ${e.type} ${text(e.kv.key)}=${text(e.kv.value)} lease ${e.kv.lease} version ${e.kv.version}`))
        .join('; ');
      const writers = [...history.kv, ...history.lease]
        .filter((op) => 'value' in op.input || 'to' in op.input)
        .filter((op) => JSON.stringify(op.input).includes(`"${value}"`))
        .map((op) => `#${op.id} ${JSON.stringify(op.input)} ${op.status} rev ${op.revision}`)
        .join('; ');
      throw new SimFailure('duplicated write', `value ${value} was written at revisions ${revisions.join(', ')} (${detail}); ops naming it: ${writers}`);
    }
  }
  for (const op of [...history.kv, ...history.lease]) checkWrite(op, written(op), atRevision, putsOf, compactedRevision);
}

/** Every acknowledged put was applied (by the replicas) at the revision its response named, and a definitely failed one never. */
function checkAppliedAt(history: History, applied: ReadonlyMap<string, number>): void {
  for (const op of [...history.kv, ...history.lease]) {
    const write = written(op);
    if (write === null || write.value === null) continue;
    const at = applied.get(write.value);
    if (op.status === 'fail' && at !== undefined) {
      throw new SimFailure(
        'phantom write',
        `op #${op.id} on n${op.node} (${describe(op)}) failed definitely at ${op.retMs}ms (${op.error}) yet a replica applied it at revision ${at}`,
        op.retMs,
      );
    }
    if (op.status === 'ok' && op.wrote && at !== op.revision) {
      throw new SimFailure(
        'lost write',
        `op #${op.id} on n${op.node} (${describe(op)}) was acknowledged at ${op.retMs}ms with revision ${op.revision}, but ` +
          (at === undefined ? 'no replica ever applied it' : `the replicas applied it at revision ${at}`),
        op.retMs,
      );
    }
  }
}

function written(op: KvOp | LeaseOp): { key: string; value: string | null } | null {
  const input = op.input;
  switch (input.f) {
    case 'write':
    case 'put':
      return { key: input.key, value: input.value };
    case 'cas':
      return { key: input.key, value: input.to };
    case 'delete':
      return { key: input.key, value: null };
    default:
      return null;
  }
}

function checkWrite(
  op: SimOp<unknown, unknown>,
  write: { key: string; value: string | null } | null,
  atRevision: Map<number, WatchEvent[]>,
  putsOf: Map<string, number[]>,
  compacted: number,
): void {
  if (write === null) return;
  if (op.status === 'fail' && write.value !== null && putsOf.has(write.value)) {
    throw new SimFailure(
      'phantom write',
      `op #${op.id} (${describe(op)}) failed definitely (${op.error}) yet its value is in the history at revision ${putsOf.get(write.value)?.[0]}`,
      op.retMs,
    );
  }
  if (op.status !== 'ok' || !op.wrote || op.revision <= compacted) return;
  const events = atRevision.get(op.revision) ?? [];
  const found = events.some(
    (e) => text(e.kv.key) === write.key && (write.value === null ? e.type === 'delete' : e.type === 'put' && text(e.kv.value) === write.value),
  );
  if (!found) {
    const there = events.map((e) => `${e.type} ${text(e.kv.key)}=${text(e.kv.value)}`).join(', ') || 'nothing';
    throw new SimFailure(
      'lost write',
      `op #${op.id} on n${op.node} (${describe(op)}) was acknowledged at ${op.retMs}ms with revision ${op.revision}, ` +
        `but the final history holds ${there} there`,
      op.retMs,
    );
  }
}

/**
 * A lease is never revoked by expiry before its TTL ran out since the call of its last successful
 * grant or keepalive (the leader's countdown starts when that applies, which is later). Leases a
 * client revoked (or tried to) are skipped.
 */
export function checkLeaseExpiry(
  history: History,
  gone: readonly LeaseGone[],
  clockEvents: readonly LeaseClockEvent[],
  tolerated: ReadonlySet<KnownBug>,
): number {
  let forgiven = 0;
  const byLease = new Map<number, LeaseOp[]>();
  for (const op of history.lease) {
    if (!('id' in op.input)) continue;
    const list = byLease.get(op.input.id) ?? [];
    list.push(op);
    byLease.set(op.input.id, list);
  }
  for (const event of gone) {
    const ops = byLease.get(event.id) ?? [];
    if (ops.some((op) => op.input.f === 'revoke' && op.callMs <= event.ms)) continue;
    let deadline = -Infinity;
    let renewal: LeaseOp | null = null;
    for (const op of ops) {
      if (op.status !== 'ok' || op.output === null || !('done' in op.output) || op.callMs > event.ms) continue;
      if (op.input.f !== 'grant' && op.input.f !== 'keepalive') continue;
      const ttl = op.input.f === 'grant' ? op.input.ttlSeconds : ttlOf(ops);
      if (op.callMs + ttl * 1000 > deadline) {
        deadline = op.callMs + ttl * 1000;
        renewal = op;
      }
    }
    if (renewal !== null && event.ms < deadline) {
      const knownBug = keepaliveAfterExpiry(event, clockEvents) ?? staleRevoke(event, clockEvents);
      if (knownBug !== null && tolerated.has(knownBug.bug)) {
        forgiven++;
        continue;
      }
      throw new SimFailure(
        knownBug === null ? 'lease expiry' : `lease expiry (known bug ${knownBug.bug})`,
        `lease ${event.id} was gone from n${event.node} at ${event.ms}ms, but op #${renewal.id} (${renewal.input.f}, called at ` +
          `${renewal.callMs}ms on n${renewal.node}, answered ok at ${renewal.retMs}ms) renewed it until at least ${deadline}ms, and no client revoked it` +
          (knownBug === null ? '' : `; ${knownBug.why}`),
        event.ms,
      );
    }
  }
  return forgiven;
}

interface Attribution {
  bug: KnownBug;
  why: string;
}

/**
 * The signature of the known bug `keepalive-after-expiry`: a leader proposed the lease's revoke,
 * and afterwards (same turn or later) a leader applied a renewal of it (a keepalive ordered before
 * that revoke in the log), which answered its client ok just before the revoke applied.
 */
function keepaliveAfterExpiry(event: LeaseGone, clockEvents: readonly LeaseClockEvent[]): Attribution | null {
  for (const revoke of clockEvents) {
    if (revoke.kind !== 'revokeProposed' || revoke.id !== event.id || revoke.ms > event.ms) continue;
    const late = clockEvents.find((e) => e.kind === 'renewedOnLeader' && e.id === event.id && e.ms >= revoke.ms && e.ms <= event.ms);
    if (late !== undefined) {
      return {
        bug: 'keepalive-after-expiry',
        why: `n${revoke.node} proposed its revoke at ${revoke.ms}ms (expired by its clock); n${late.node} then applied a keepalive at ${late.ms}ms, answering it ok`,
      };
    }
  }
  return null;
}

/**
 * The signature of the known bug `stale-revoke`: a revoke of the lease was proposed by a replica
 * that was no longer the real leader: its Raft core had already stepped down, or a leader of a
 * newer term had renewed the lease (the proposer was a deposed or paused leader of an older term).
 */
function staleRevoke(event: LeaseGone, clockEvents: readonly LeaseClockEvent[]): Attribution | null {
  for (const revoke of clockEvents) {
    if (revoke.kind !== 'revokeProposed' || revoke.id !== event.id || revoke.ms > event.ms) continue;
    if (!revoke.raftLeader) {
      return {
        bug: 'stale-revoke',
        why: `n${revoke.node} proposed a revoke at ${revoke.ms}ms believing it led term ${revoke.term}, but its Raft core was no longer leader; the revoke reached a later leader and committed`,
      };
    }
    const newer = clockEvents.find((e) => e.kind === 'renewedOnLeader' && e.id === event.id && e.term > revoke.term && e.ms <= event.ms);
    if (newer !== undefined) {
      return {
        bug: 'stale-revoke',
        why: `n${revoke.node}, leader of the old term ${revoke.term}, proposed a revoke at ${revoke.ms}ms; n${newer.node}, leader of term ${newer.term}, had renewed the lease at ${newer.ms}ms, yet the revoke committed`,
      };
    }
  }
  return null;
}

function ttlOf(ops: readonly LeaseOp[]): number {
  for (const op of ops) if (op.input.f === 'grant') return op.input.ttlSeconds;
  return 0;
}

/** What must be identical on every replica once they applied the same log. */
export function replicaFingerprint(replica: Replica): string {
  const store = replica.store;
  const hash = store.hashKV(0);
  const leases = store
    .leases()
    .leases.map((l) => l.id)
    .join(',');
  return `applied=${replica.applied} rev=${hash.revision} compacted=${hash.compactRevision} hash=${hash.hash} leases=[${leases}] keys=${store.keyCount}`;
}

export function eventsFingerprint(events: readonly WatchEvent[]): string {
  let h = 0x811c9dc5;
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  };
  for (const e of events) mix(`${e.type}|${text(e.kv.key)}|${text(e.kv.value)}|${e.kv.modRevision}|${e.kv.lease};`);
  return `${events.length} events, fnv ${(h >>> 0).toString(16)}`;
}
