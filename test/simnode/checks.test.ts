// The whole-node simulator's checks on hand-made histories: each must pass a correct history and
// catch the one bug planted in it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WatchEvent } from '../../src/mvcc/index.ts';
import { checkLeaseExpiry, checkLinearizability, checkRevisionOrder, checkWrites, History, writeEvidence } from '../../src/simnode/index.ts';
import type { KvInput, KvOutput, LeaseClockEvent, LeaseInput, LeaseOutput, SimOp } from '../../src/simnode/index.ts';

/** A history on a hand-driven clock. */
function recorder() {
  let now = 0;
  const history = new History(() => now);
  const at = (ms: number) => {
    now = ms;
  };
  const kv = (callMs: number, input: KvInput, retMs: number | null, output: KvOutput | null, revision = 0, wrote = false): SimOp<KvInput, KvOutput> => {
    at(callMs);
    const op = history.invoke<KvInput, KvOutput>(history.kv, 1, 1, input, callMs);
    if (retMs === null || output === null) {
      history.unknown(op, 'timeout');
    } else {
      at(retMs);
      history.complete(op, output, retMs, revision, wrote);
    }
    return op;
  };
  const lease = (callMs: number, input: LeaseInput, retMs: number, output: LeaseOutput, revision = 0): SimOp<LeaseInput, LeaseOutput> => {
    at(callMs);
    const op = history.invoke<LeaseInput, LeaseOutput>(history.lease, 2, 1, input, callMs);
    at(retMs);
    history.complete(op, output, retMs, revision, input.f === 'put');
    return op;
  };
  return { history, kv, lease, at };
}

function put(key: string, value: string, revision: number): WatchEvent {
  const kv = { key: Buffer.from(key), value: Buffer.from(value), createRevision: revision, modRevision: revision, version: 1, lease: 0 };
  return { type: 'put', kv, prevKv: null };
}

test('kv: a correct history passes; a read of a deleted key that returns its old value is caught', () => {
  const ok = recorder();
  ok.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 2, true);
  ok.kv(20, { f: 'delete', key: 'a' }, 30, { deleted: 1 }, 3, true);
  ok.kv(40, { f: 'read', key: 'a' }, 50, { value: null }, 3);
  ok.kv(60, { f: 'cas', key: 'a', from: 'v1', to: 'v2' }, 70, { succeeded: false }, 3);
  ok.kv(80, { f: 'write', key: 'a', value: 'v3' }, null, null); // unknown: may or may not land
  ok.kv(90, { f: 'read', key: 'a' }, 100, { value: 'v3' }, 4);
  checkLinearizability(ok.history);
  checkRevisionOrder(ok.history);

  const stale = recorder();
  stale.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 2, true);
  stale.kv(20, { f: 'delete', key: 'a' }, 30, { deleted: 1 }, 3, true);
  stale.kv(40, { f: 'read', key: 'a' }, 50, { value: 'v1' }, 3);
  assert.throws(() => checkLinearizability(stale.history), /linearizability: the kv history is not linearizable/);
});

test('kv: an unknown write the final history does not hold is dropped, so reading its value is caught', () => {
  const r = recorder();
  r.kv(0, { f: 'write', key: 'a', value: 'v1' }, null, null);
  r.kv(10, { f: 'read', key: 'a' }, 20, { value: 'v1' }, 2);
  checkLinearizability(r.history); // without evidence, v1 may have landed
  checkLinearizability(r.history, writeEvidence([put('a', 'v1', 2)], 0));
  assert.throws(() => checkLinearizability(r.history, writeEvidence([], 0)), /not linearizable/);
  // Below a compaction the history proves nothing: the write is kept.
  checkLinearizability(r.history, writeEvidence([], 5));
});

test('kv: a delete must report whether the key existed', () => {
  const r = recorder();
  r.kv(0, { f: 'delete', key: 'a' }, 10, { deleted: 1 }, 2, true);
  assert.throws(() => checkLinearizability(r.history), /not linearizable/);
});

test('revision order: a read that starts after a write ended must see its revision', () => {
  const ok = recorder();
  ok.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 5, true);
  ok.kv(20, { f: 'read', key: 'b' }, 30, { value: null }, 5);
  ok.kv(35, { f: 'write', key: 'b', value: 'v2' }, 40, { written: true }, 6, true);
  checkRevisionOrder(ok.history);

  const stale = recorder();
  stale.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 5, true);
  stale.kv(20, { f: 'read', key: 'b' }, 30, { value: null }, 4); // another key, but an older revision
  assert.throws(() => checkRevisionOrder(stale.history), /revision order: op #2 .* answered revision 4/);

  const shared = recorder();
  shared.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 5, true);
  shared.kv(20, { f: 'write', key: 'b', value: 'v2' }, 30, { written: true }, 5, true);
  assert.throws(() => checkRevisionOrder(shared.history), /both wrote revision 5/);
});

test('writes: acknowledged writes must be in the final history; none twice; none after a definite failure', () => {
  const r = recorder();
  r.kv(0, { f: 'write', key: 'a', value: 'v1' }, 10, { written: true }, 2, true);
  r.kv(20, { f: 'write', key: 'a', value: 'v2' }, 30, { written: true }, 3, true);
  checkWrites(r.history, [put('a', 'v1', 2), put('a', 'v2', 3)], 0);
  assert.throws(() => checkWrites(r.history, [put('a', 'v1', 2), put('a', 'v9', 3)], 0), /lost write: op #2 .* holds put a=v9 there/);
  // Below the compacted revision nothing can be checked.
  checkWrites(r.history, [put('a', 'v2', 3)], 2);
  assert.throws(() => checkWrites(r.history, [put('a', 'v1', 2), put('a', 'v2', 3), put('a', 'v1', 4)], 0), /duplicated write: value v1/);

  const failed = recorder();
  failed.at(0);
  const op = failed.history.invoke<KvInput, KvOutput>(failed.history.kv, 1, 1, { f: 'write', key: 'a', value: 'v1' }, 0);
  failed.history.fail(op, 'etcdserver: too many requests', 5);
  assert.throws(() => checkWrites(failed.history, [put('a', 'v1', 2)], 0), /phantom write/);
});

test('lease: an answer that needs a live lease after it was revoked is caught', () => {
  const ok = recorder();
  ok.lease(0, { f: 'grant', key: 'l1', id: 7, ttlSeconds: 2 }, 10, { done: true });
  ok.lease(20, { f: 'put', key: 'l1', id: 7, value: 'v1' }, 30, { done: true }, 2);
  ok.lease(40, { f: 'read', key: 'l1' }, 50, { value: 'v1' }, 2);
  ok.lease(60, { f: 'revoke', key: 'l1', id: 7 }, 70, { done: true }, 3);
  ok.lease(80, { f: 'read', key: 'l1' }, 90, { value: null }, 3);
  ok.lease(100, { f: 'keepalive', key: 'l1', id: 7 }, 110, { notFound: true });
  checkLinearizability(ok.history);

  const bad = recorder();
  bad.lease(0, { f: 'grant', key: 'l1', id: 7, ttlSeconds: 2 }, 10, { done: true });
  bad.lease(20, { f: 'revoke', key: 'l1', id: 7 }, 30, { done: true }, 2);
  bad.lease(40, { f: 'keepalive', key: 'l1', id: 7 }, 50, { done: true });
  assert.throws(() => checkLinearizability(bad.history), /the lease history is not linearizable/);
});

test('lease expiry: a lease gone before its TTL ran out is caught, and attributed when a known bug explains it', () => {
  const r = recorder();
  r.lease(0, { f: 'grant', key: 'l1', id: 7, ttlSeconds: 2 }, 10, { done: true });
  r.lease(1_000, { f: 'keepalive', key: 'l1', id: 7 }, 1_010, { done: true });
  const none = new Set<never>();
  assert.equal(checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 3_000 }], [], none), 0); // 1000 + 2 s: on time
  assert.throws(() => checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 2_500 }], [], none), /^SimFailure: lease expiry: lease 7 was gone/);

  const keepaliveAfterRevoke: LeaseClockEvent[] = [
    { kind: 'revokeProposed', id: 7, node: 1, term: 2, raftLeader: true, ms: 2_400 },
    { kind: 'renewedOnLeader', id: 7, node: 1, term: 2, raftLeader: true, ms: 2_450 },
  ];
  assert.throws(
    () => checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 2_500 }], keepaliveAfterRevoke, none),
    /lease expiry \(known bug keepalive-after-expiry\)/,
  );
  assert.equal(checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 2_500 }], keepaliveAfterRevoke, new Set(['keepalive-after-expiry'] as const)), 1);

  const staleLeader: LeaseClockEvent[] = [
    { kind: 'renewedOnLeader', id: 7, node: 1, term: 3, raftLeader: true, ms: 1_005 },
    { kind: 'revokeProposed', id: 7, node: 2, term: 2, raftLeader: true, ms: 2_400 },
  ];
  assert.throws(() => checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 2_500 }], staleLeader, none), /known bug stale-revoke/);
  // A client's own revoke explains any disappearance.
  r.lease(2_000, { f: 'revoke', key: 'l1', id: 7 }, 2_600, { done: true });
  assert.equal(checkLeaseExpiry(r.history, [{ id: 7, node: 1, ms: 2_500 }], [], none), 0);
});
