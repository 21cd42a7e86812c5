// Randomized model test: seeded random operations (puts, deletes, txns with compares and nesting,
// ranges with every option at random revisions, compactions, leases, snapshot/restore) against a
// deliberately naive reference model that recomputes everything from the full event history.
// Watchers (some pausing at random) must end up with exactly the model's events, in order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore, WatchCompactedError } from '../../src/mvcc/index.ts';
import type {
  Compare,
  KeyValue,
  RangeRequest,
  RequestOp,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
  WatchEvent,
  WatchHandle,
} from '../../src/mvcc/index.ts';
import { EtcdError } from '../../src/util/index.ts';
import { b, cmp, rng, s } from './helpers.ts';

// ---------------------------------------------------------------- the reference model

interface MEvent {
  rev: number;
  key: string;
  type: 'put' | 'delete';
  value: string;
  lease: number;
}
interface MKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: number;
}

const byteOrder = (x: string, y: string) => Buffer.compare(Buffer.from(x), Buffer.from(y));
const ALL_END = '\u0000';

/** Is `key` in etcd's [key, rangeEnd) ("" = single key, "\0" = to the end)? Keys are ASCII. */
function inRange(key: string, lo: string, end: string): boolean {
  if (end === '') return key === lo;
  if (end === ALL_END) return key >= lo;
  return key >= lo && key < end;
}

class Model {
  rev = 1;
  /** etcd's compactMainRev: -1 until the first compaction. */
  compacted = -1;
  events: MEvent[] = [];
  leases = new Map<number, { ttl: number; remaining: number }>();
  private pending: MEvent[] | null = null;

  kvAt(key: string, rev: number): MKv | null {
    let kv = null as MKv | null;
    for (const e of [...this.events, ...(this.pending ?? [])]) {
      if (e.rev > rev) break;
      if (e.key !== key) continue;
      if (e.type === 'delete') kv = null;
      else kv = { key, value: e.value, lease: e.lease, modRevision: e.rev, createRevision: kv?.createRevision ?? e.rev, version: (kv?.version ?? 0) + 1 };
    }
    return kv;
  }

  allKeys(): string[] {
    return [...new Set([...this.events, ...(this.pending ?? [])].map((e) => e.key))].sort(byteOrder);
  }

  rangeAt(lo: string, end: string, rev: number): MKv[] {
    return this.allKeys()
      .filter((k) => inRange(k, lo, end))
      .map((k) => this.kvAt(k, rev))
      .filter((kv): kv is MKv => kv !== null);
  }

  readRev(): number {
    return this.pending !== null && this.pending.length > 0 ? this.rev + 1 : this.rev;
  }

  begin(): void {
    this.pending = [];
  }

  write(key: string, type: 'put' | 'delete', value = '', lease = 0): void {
    assert.ok(this.pending !== null);
    this.pending.push({ rev: this.rev + 1, key, type, value, lease });
  }

  commit(): MEvent[] {
    const pending = this.pending ?? [];
    this.pending = null;
    if (pending.length > 0) {
      this.rev += 1;
      this.events.push(...pending);
    }
    return pending;
  }
}

// ---------------------------------------------------------------- generators

const KEYS = ['a', 'a/1', 'a/2', 'a/3', 'b', 'b/1', 'c', 'd', 'e/x', 'e/y'];
const ENDS = ['', '', '', 'b', 'c', 'z', ALL_END, 'a0', 'e/z'];

class Gen {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

function rangeRequest(g: Gen, model: Model): RangeRequest {
  const lo = g.pick(KEYS);
  const rev = g.chance(0.5) ? 0 : g.int(model.rev + 2);
  return {
    key: b(lo),
    rangeEnd: b(g.pick(ENDS)),
    limit: g.chance(0.4) ? g.int(4) : 0,
    revision: rev,
    sortOrder: g.pick<SortOrder>(['none', 'none', 'ascend', 'descend']),
    sortTarget: g.pick<SortTarget>(['key', 'key', 'version', 'create', 'mod', 'value']),
    serializable: false,
    keysOnly: g.chance(0.2),
    countOnly: g.chance(0.1),
    minModRevision: g.chance(0.15) ? g.int(model.rev + 1) : 0,
    maxModRevision: g.chance(0.15) ? g.int(model.rev + 1) : 0,
    minCreateRevision: g.chance(0.15) ? g.int(model.rev + 1) : 0,
    maxCreateRevision: g.chance(0.15) ? g.int(model.rev + 1) : 0,
  };
}

/** The model's answer to a range (etcd 3.4 semantics, written out plainly). */
function modelRange(model: Model, req: RangeRequest, readRev: number): { kvs: MKv[]; count: number; more: boolean } {
  const rev = req.revision > 0 ? req.revision : readRev;
  let kvs = model.rangeAt(s(req.key), s(req.rangeEnd), rev);
  const count = kvs.length;
  if (req.countOnly) return { kvs: [], count, more: false };
  const filtered = req.minModRevision || req.maxModRevision || req.minCreateRevision || req.maxCreateRevision;
  if (req.sortOrder === 'none' && !filtered && req.limit > 0) kvs = kvs.slice(0, req.limit + 1);
  kvs = kvs.filter(
    (kv) =>
      (!req.minModRevision || kv.modRevision >= req.minModRevision) &&
      (!req.maxModRevision || kv.modRevision <= req.maxModRevision) &&
      (!req.minCreateRevision || kv.createRevision >= req.minCreateRevision) &&
      (!req.maxCreateRevision || kv.createRevision <= req.maxCreateRevision),
  );
  const order = req.sortOrder === 'none' && req.sortTarget !== 'key' ? 'ascend' : req.sortOrder;
  if (order !== 'none') {
    const field = (kv: MKv): number | string =>
      ({ key: kv.key, version: kv.version, create: kv.createRevision, mod: kv.modRevision, value: kv.value })[req.sortTarget];
    const base = (x: MKv, y: MKv) => {
      const fx = field(x);
      const fy = field(y);
      return typeof fx === 'string' ? byteOrder(fx, fy as string) : fx - (fy as number);
    };
    kvs = [...kvs].sort((x, y) => (order === 'ascend' ? base(x, y) : base(y, x)) || byteOrder(x.key, y.key));
  }
  const more = req.limit > 0 && kvs.length > req.limit;
  if (more) kvs = kvs.slice(0, req.limit);
  if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: '' }));
  return { kvs, count, more };
}

const show = (kv: KeyValue | MKv | null): string => {
  if (kv === null) return 'null';
  const key = typeof kv.key === 'string' ? kv.key : s(kv.key);
  const value = typeof kv.value === 'string' ? kv.value : s(kv.value);
  return `${key}=${value}@${kv.modRevision}/c${kv.createRevision}/v${kv.version}/l${kv.lease}`;
};

// ---------------------------------------------------------------- txn generation and model

/**
 * Random ops on distinct keys (etcd's duplicate rule), plus now and then a delete with range_end
 * "\0", which etcd's rule lets through beside anything: the txn may then write a key twice in its
 * revision (put then delete, or delete then put), which the store models with sub-revisions.
 */
function randomOps(g: Gen, model: Model, used: Set<string>, depth: number): RequestOp[] {
  const ops: RequestOp[] = [];
  const n = g.int(4);
  for (let i = 0; i < n; i++) {
    if (g.chance(0.08)) {
      ops.push({ type: 'deleteRange', deleteRange: { key: b(g.pick(KEYS)), rangeEnd: b(ALL_END), prevKv: g.chance(0.5) } });
      continue;
    }
    const kind = g.int(depth < 2 ? 5 : 4);
    const key = g.pick(KEYS);
    if (kind === 0) ops.push({ type: 'range', range: { ...rangeRequest(g, model), revision: 0 } });
    else if (kind <= 2 && !used.has(key)) {
      used.add(key);
      const lease = g.chance(0.2) && model.leases.size > 0 ? g.pick([...model.leases.keys()]) : 0;
      ops.push({ type: 'put', put: { key: b(key), value: b(`t${g.int(100)}`), lease, prevKv: g.chance(0.5), ignoreValue: false, ignoreLease: false } });
    } else if (kind === 3 && !used.has(key)) {
      used.add(key); // single-key delete: conflicts only with a put of that key
      ops.push({ type: 'deleteRange', deleteRange: { key: b(key), rangeEnd: new Uint8Array(0), prevKv: g.chance(0.5) } });
    } else if (kind === 4) {
      const inner = randomTxn(g, model, used, depth + 1);
      ops.push({ type: 'txn', txn: inner });
    }
  }
  return ops;
}

function randomTxn(g: Gen, model: Model, used: Set<string>, depth: number): TxnRequest {
  const compare: Compare[] = [];
  for (let i = g.int(3); i > 0; i--) {
    const target = g.pick(['version', 'create', 'mod', 'value', 'lease'] as const);
    const result = g.pick(['equal', 'notEqual', 'greater', 'less'] as const);
    const operand = target === 'value' ? `t${g.int(100)}` : g.int(model.rev + 2);
    compare.push(cmp(g.pick(KEYS), target, result, operand, g.chance(0.3) ? b(g.pick(ENDS.filter((e) => e !== ''))) : undefined));
  }
  // then and else branches may reuse keys among themselves, but not with what else runs
  const thenUsed = new Set(used);
  const success = randomOps(g, model, thenUsed, depth);
  const elseUsed = new Set(used);
  const failure = randomOps(g, model, elseUsed, depth);
  for (const k of [...thenUsed, ...elseUsed]) used.add(k);
  return { compare, success, failure };
}

function modelCompare(model: Model, c: Compare): boolean {
  const kvs = model.rangeAt(s(c.key), s(c.rangeEnd), model.rev);
  const check = (kv: MKv | null): boolean => {
    let diff: number;
    if (c.target === 'value') diff = kv === null ? 0 : byteOrder(kv.value, s(c.value));
    else {
      const actual = kv === null ? 0 : { version: kv.version, create: kv.createRevision, mod: kv.modRevision, lease: kv.lease }[c.target];
      const operand = { version: c.version, create: c.createRevision, mod: c.modRevision, lease: c.lease }[c.target];
      diff = actual - operand;
    }
    return { equal: diff === 0, notEqual: diff !== 0, greater: diff > 0, less: diff < 0 }[c.result];
  };
  if (kvs.length === 0) return c.target === 'value' ? false : check(null);
  return kvs.every(check);
}

interface MPlan {
  ok: boolean;
  ops: RequestOp[];
  nested: Map<number, MPlan>;
}

/** Evaluates every compare first (pre-txn state), as etcd does, then applies. Returns text. */
function modelTxn(model: Model, req: TxnRequest): string[] {
  const plan = (t: TxnRequest): MPlan => {
    const ok = t.compare.every((c) => modelCompare(model, c));
    const ops = ok ? t.success : t.failure;
    const nested = new Map<number, MPlan>();
    ops.forEach((op, i) => {
      if (op.type === 'txn') nested.set(i, plan(op.txn));
    });
    return { ok, ops, nested };
  };
  const out: string[] = [];
  const run = (p: MPlan) => {
    out.push(`succeeded=${p.ok}`);
    p.ops.forEach((op, i) => {
      if (op.type === 'range') {
        const r = modelRange(model, op.range, model.readRev());
        out.push(`range ${r.count} ${r.more} ${r.kvs.map(show).join(' ')}`);
      } else if (op.type === 'put') {
        const key = s(op.put.key);
        const prev = model.kvAt(key, model.readRev());
        model.write(key, 'put', s(op.put.value), op.put.lease);
        out.push(`put ${op.put.prevKv ? show(prev) : 'null'}`);
      } else if (op.type === 'deleteRange') {
        const victims = model.rangeAt(s(op.deleteRange.key), s(op.deleteRange.rangeEnd), model.readRev());
        for (const kv of victims) model.write(kv.key, 'delete');
        out.push(`delete ${victims.length} ${op.deleteRange.prevKv ? victims.map(show).join(' ') : ''}`);
      } else if (op.type === 'txn') {
        run(p.nested.get(i)!);
      }
    });
  };
  run(plan(req));
  return out;
}

function storeTxnText(resp: TxnResponse): string[] {
  const out: string[] = [];
  const walk = (t: TxnResponse) => {
    out.push(`succeeded=${t.succeeded}`);
    for (const op of t.responses as ResponseOp[]) {
      if (op.type === 'range') out.push(`range ${op.range.count} ${op.range.more} ${op.range.kvs.map(show).join(' ')}`);
      else if (op.type === 'put') out.push(`put ${show(op.put.prevKv)}`);
      else if (op.type === 'deleteRange') out.push(`delete ${op.deleteRange.deleted} ${op.deleteRange.prevKvs.map(show).join(' ')}`);
      else walk(op.txn);
    }
  };
  walk(resp);
  return out;
}

// ---------------------------------------------------------------- watchers

interface TestWatcher {
  lo: string;
  end: string;
  start: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  got: WatchEvent[];
  handle: WatchHandle | null;
  pausy: boolean;
}

function expectedEvents(model: Model, w: TestWatcher): MEvent[] {
  return model.events.filter(
    (e) => e.rev >= w.start && inRange(e.key, w.lo, w.end) && !(e.type === 'put' && w.noPut) && !(e.type === 'delete' && w.noDelete),
  );
}

function checkWatcher(model: Model, w: TestWatcher, compacted: number, label: string): void {
  const expected = expectedEvents(model, w);
  const got = w.got.map((e) => `${e.type} ${s(e.kv.key)}@${e.kv.modRevision} ${e.type === 'put' ? s(e.kv.value) : ''}`);
  const want = expected.map((e) => `${e.type} ${e.key}@${e.rev} ${e.type === 'put' ? e.value : ''}`);
  assert.deepEqual(got, want, `${label}: watcher ${w.lo}..${JSON.stringify(w.end)} from ${w.start}`);
  w.got.forEach((e, i) => {
    const prev = w.prevKv && !(e.type === 'put' && e.kv.version === 1) ? model.kvAt(expected[i].key, expected[i].rev - 1) : null;
    const ok = show(e.prevKv) === show(prev) || (e.prevKv === null && expected[i].rev <= compacted);
    assert.ok(ok, `${label}: prevKv of ${show(e.kv)}: got ${show(e.prevKv)} want ${show(prev)}`);
  });
}

// ---------------------------------------------------------------- the run

type Stats = Record<string, number>;

function runSeed(seed: number, steps: number): Stats {
  const stats: Stats = {};
  const count = (what: string) => {
    stats[what] = (stats[what] ?? 0) + 1;
  };
  const g = new Gen(rng(seed));
  const model = new Model();
  let store = new MvccStore({ maxEventsPerWatchBatch: 5, minLeaseTtlSeconds: 1 });
  const watchers: TestWatcher[] = [];
  let nextLease = 1;
  const label = (step: number) => `seed ${seed} step ${step}`;

  /** Starts (or, after a restore, re-starts) a store watch for `w` from `startRevision`. */
  const attach = (w: TestWatcher, startRevision: number) => {
    w.handle = store.watch(
      { key: b(w.lo), rangeEnd: b(w.end), startRevision, noPut: w.noPut, noDelete: w.noDelete, prevKv: w.prevKv },
      (events) => {
        w.got.push(...events);
        return !(w.pausy && g.chance(0.3));
      },
    );
  };

  const expectError = (fn: () => unknown, message: string, step: number) => {
    assert.throws(fn, (e: unknown) => e instanceof EtcdError && e.message === message, `${label(step)}: expected ${message}`);
  };

  for (let step = 0; step < steps; step++) {
    const roll = g.int(100);
    const current = model.rev;
    if (roll < 25) {
      // put
      const key = g.pick(KEYS);
      const lease = g.chance(0.25) ? (g.chance(0.8) && model.leases.size > 0 ? g.pick([...model.leases.keys()]) : 999) : 0;
      const live = model.kvAt(key, current);
      const ignoreValue = g.chance(0.1);
      const ignoreLease = lease === 0 && g.chance(0.1);
      const req = { key: b(key), value: ignoreValue ? new Uint8Array(0) : b(`v${step}`), lease, prevKv: g.chance(0.5), ignoreValue, ignoreLease };
      if (lease !== 0 && !model.leases.has(lease)) {
        expectError(() => store.put(req), 'etcdserver: requested lease not found', step);
        continue;
      }
      if ((ignoreValue || ignoreLease) && live === null) {
        expectError(() => store.put(req), 'etcdserver: key not found', step);
        continue;
      }
      const r = store.put(req);
      count('put');
      model.begin();
      model.write(key, 'put', ignoreValue ? live!.value : `v${step}`, ignoreLease ? live!.lease : lease);
      model.commit();
      assert.equal(r.response.header.revision, model.rev, label(step));
      assert.equal(show(r.response.prevKv), req.prevKv ? show(live) : 'null', label(step));
    } else if (roll < 35) {
      // delete
      const lo = g.pick(KEYS);
      const end = g.pick(ENDS);
      const r = store.deleteRange({ key: b(lo), rangeEnd: b(end), prevKv: true });
      const victims = model.rangeAt(lo, end, current);
      model.begin();
      for (const kv of victims) model.write(kv.key, 'delete');
      model.commit();
      assert.equal(r.response.deleted, victims.length, label(step));
      assert.deepEqual(r.response.prevKvs.map(show), victims.map(show), label(step));
      assert.equal(r.response.header.revision, model.rev, label(step));
    } else if (roll < 55) {
      // txn
      const req = randomTxn(g, model, new Set(), 0);
      const r = store.txn(req);
      model.begin();
      const want = modelTxn(model, req);
      const events = model.commit();
      assert.deepEqual(storeTxnText(r.response), want, label(step));
      count(r.response.succeeded ? 'txn succeeded' : 'txn failed');
      if (events.length > 0) count('txn wrote');
      if (new Set(events.map((e) => e.key)).size < events.length) count('txn wrote a key twice');
      assert.equal(r.response.header.revision, model.rev, label(step));
      assert.equal(r.events.length, events.length, label(step));
    } else if (roll < 75) {
      // range
      const req = rangeRequest(g, model);
      if (req.revision > current) {
        expectError(() => store.range(req), 'etcdserver: mvcc: required revision is a future revision', step);
      } else if (req.revision > 0 && req.revision < model.compacted) {
        expectError(() => store.range(req), 'etcdserver: mvcc: required revision has been compacted', step);
      } else {
        const r = store.range(req);
        count(r.kvs.length > 0 ? 'range found' : 'range empty');
        const want = modelRange(model, req, current);
        assert.deepEqual([r.count, r.more, r.kvs.map(show)], [want.count, want.more, want.kvs.map(show)], `${label(step)} ${JSON.stringify({ ...req, key: s(req.key), rangeEnd: s(req.rangeEnd) })}`);
        assert.equal(r.header.revision, current);
      }
    } else if (roll < 79) {
      // compact
      const rev = model.compacted + g.int(Math.max(1, current - model.compacted)) + (g.chance(0.1) ? -1 : 1);
      if (rev <= model.compacted) expectError(() => store.compact({ revision: rev, physical: false }), 'etcdserver: mvcc: required revision has been compacted', step);
      else if (rev > current) expectError(() => store.compact({ revision: rev, physical: false }), 'etcdserver: mvcc: required revision is a future revision', step);
      else {
        store.compact({ revision: rev, physical: false });
        model.compacted = rev;
        count('compact');
      }
    } else if (roll < 84) {
      // lease grant / revoke / checkpoint
      if (g.chance(0.5) || model.leases.size === 0) {
        const id = nextLease++;
        store.leaseGrant(id, 10 + g.int(50));
        model.leases.set(id, { ttl: 0, remaining: 0 });
      } else if (g.chance(0.7)) {
        const id = g.pick([...model.leases.keys()]);
        const r = store.leaseRevoke(id);
        const victims = model.rangeAt('\u0000', ALL_END, current).filter((kv) => kv.lease === id);
        model.begin();
        for (const kv of victims) model.write(kv.key, 'delete');
        model.commit();
        model.leases.delete(id);
        assert.deepEqual(r.events.map((e) => s(e.kv.key)), victims.map((kv) => kv.key), label(step));
        if (victims.length > 0) count('revoke with keys');
        assert.equal(r.response.header.revision, model.rev);
      } else {
        const id = g.pick([...model.leases.keys()]);
        const keys = store.leaseTimeToLive(id, true).keys.map(s);
        assert.deepEqual(keys, model.rangeAt('\u0000', ALL_END, current).filter((kv) => kv.lease === id).map((kv) => kv.key), label(step));
      }
    } else if (roll < 92) {
      // watchers: create one (maybe in the past), or pause/resume one
      if (watchers.length < 8 && g.chance(0.6)) {
        const start = g.chance(0.3) ? 0 : model.compacted + g.int(current - model.compacted + 2);
        const w: TestWatcher = {
          lo: g.pick(KEYS),
          end: g.pick(ENDS),
          start: start <= 0 ? current + 1 : start,
          noPut: g.chance(0.15),
          noDelete: g.chance(0.15),
          prevKv: g.chance(0.5),
          got: [],
          handle: null,
          pausy: g.chance(0.5),
        };
        attach(w, start);
        watchers.push(w);
      } else if (watchers.length > 0) {
        const w = g.pick(watchers);
        if (w.handle?.state === 'paused') {
          try {
            w.handle.resume();
          } catch (error) {
            assert.ok(error instanceof WatchCompactedError && error.compactRevision === model.compacted, `${label(step)}: ${String(error)}`);
            watchers.splice(watchers.indexOf(w), 1);
          }
        } else if (w.handle?.state === 'synced' && g.chance(0.5)) w.handle.pause();
      }
    } else if (roll < 94) {
      // snapshot → restore; watchers are re-created where they stopped
      const before = store.hashKV(0);
      const restored = MvccStore.restore(Array.from(store.snapshotChunks(4096 + g.int(20000))), store.limits);
      assert.deepEqual(restored.hashKV(0), before, label(step));
      count('restore');
      const resumeAt = new Map(watchers.map((w) => [w, w.handle!.nextRevision]));
      for (const w of watchers) w.handle!.cancel();
      store = restored;
      for (const w of [...watchers]) {
        if (resumeAt.get(w)! < model.compacted) {
          watchers.splice(watchers.indexOf(w), 1); // compaction passed it while it was paused
          continue;
        }
        attach(w, resumeAt.get(w)!);
      }
    } else {
      store.checkInvariants();
      assert.equal(store.currentRevision, model.rev, label(step));
      assert.equal(store.compactedRevision, model.compacted, label(step));
    }
  }

  // drain every watcher and compare with the model
  for (const w of watchers) {
    w.pausy = false;
    if (w.handle?.state === 'paused') {
      try {
        w.handle.resume();
      } catch (error) {
        assert.ok(error instanceof WatchCompactedError);
        continue;
      }
    }
    checkWatcher(model, w, model.compacted, `seed ${seed} end`);
    stats['watched events'] = (stats['watched events'] ?? 0) + w.got.length;
  }
  store.checkInvariants();
  stats['final revision'] = model.rev;
  return stats;
}

describe('randomized model test', () => {
  for (const seed of [1, 2, 3, 20261121]) {
    it(`seed ${seed}: 2500 random operations match the model`, () => {
      const stats = runSeed(seed, 2500);
      // the run must have exercised what it claims to (a generator bug must not pass silently)
      for (const what of ['put', 'txn succeeded', 'txn failed', 'txn wrote', 'txn wrote a key twice', 'range found', 'range empty', 'compact', 'restore', 'revoke with keys']) {
        assert.ok((stats[what] ?? 0) >= 3, `only ${stats[what] ?? 0} × ${what}: ${JSON.stringify(stats)}`);
      }
      assert.ok(stats["watched events"] >= 100, JSON.stringify(stats));
      console.log(JSON.stringify(stats));
    });
  }
});
