// The differential suite's operations: plain data (printable, replayable), generated from a seed.
// Requests are proto-loader input objects (camelCase fields, enums by name) in which some values
// are placeholders the runner resolves just before sending (run.ts, resolve()):
//   '$rev', '$rev-3', '$rev+2'        the reference cluster's current revision, plus or minus n
//   '$compact', '$compact-1'          the reference cluster's last compaction revision (-1 before any, as etcd)
//   '$readable-3'                     '$rev-3', raised to the compaction revision (and to 1) if below it
//   '$lease:N'                        the lease ID held in slot N on *this* cluster (IDs may differ per cluster)
//   '$big:N'                          N bytes of 'v' (a value too large to print)
// Byte fields (key, rangeEnd, value) are strings with one char per byte (latin1).

export type Req = { [field: string]: unknown };

/** Which member of the 3-member cluster receives a request. */
export type Member = 0 | 1 | 2;

export type Op =
  | { kind: 'put' | 'range' | 'deleteRange' | 'txn' | 'compact'; member: Member; req: Req; note?: string }
  | { kind: 'leaseGrant'; member: Member; req: Req; slot: number | null; note?: string }
  | { kind: 'leaseRevoke' | 'leaseTimeToLive' | 'leaseLeases' | 'leaseKeepAlive'; member: Member; req: Req; note?: string }
  | { kind: 'hashKV'; member: Member; req: Req; note?: string }
  | { kind: 'watchCreate'; stream: number; req: Req; note?: string }
  | { kind: 'watchCancel'; stream: number; watch: number | 'unknown'; note?: string }
  | { kind: 'watchCheck'; note?: string }
  /** Nothing is sent for `ms`: time for leases to expire on both clusters. */
  | { kind: 'sleep'; ms: number; note?: string };

/** Watch streams per cluster; stream s lives on member s % 3. */
export const WATCH_STREAMS = 2;
/** Lease slots; even slots are granted with an explicit ID (LEASE_ID_BASE + slot), odd ones with ID 0. */
export const LEASE_SLOTS = 8;
export const LEASE_ID_BASE = 7000;
/** etcd's default --max-request-bytes, and gRPC's receive limit above it (+512 KiB). */
const MAX_REQUEST_BYTES = 1_572_864;

// Keys chosen to collide: nested prefixes, a key that sorts before all ('\x00') and after all ('\xff').
const KEYS = [
  'a', 'b', 'c', 'd', 'e', 'f',
  'a/1', 'a/2', 'a/3', 'a/10', 'b/1', 'b/2', 'c/x', 'c/x/y', 'c/y',
  'k\x00', 'k\xff', '\x00', '\xff', 'zz',
];
const VALUES = ['', 'v0', 'v1', 'v2', 'x', 'yy', 'a/1', '\x00\x01', 'zzz'];

/** A small deterministic generator (mulberry32), so a seed replays the same sequence everywhere. */
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

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** Picks an entry of `[weight, value]` pairs in proportion to its weight. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    const total = entries.reduce((sum, [weight]) => sum + weight, 0);
    let x = this.next() * total;
    for (const [weight, value] of entries) {
      x -= weight;
      if (x < 0) return value;
    }
    return entries[entries.length - 1][1];
  }
}

/** The smallest key after every key with `prefix` (clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'latin1');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) return Buffer.concat([bytes.subarray(0, i), Buffer.from([bytes[i] + 1])]).toString('latin1');
  }
  return '\x00';
}

/** An op addressed to a member, before the member is chosen. */
type OpBody = Extract<Op, { member: Member }> extends infer T ? (T extends unknown ? Omit<T, 'member'> : never) : never;

class Generator {
  private readonly ops: Op[] = [];
  private lastWriteMember: Member = 0;
  private watchCreates: number[] = [];
  private nextExplicitWatchId = 100;

  constructor(private readonly rng: Rng) {}

  generate(count: number): Op[] {
    this.prologue();
    while (this.ops.length < count - 1) {
      if (this.ops.length > 0 && this.ops.length % 60 === 0) this.ops.push({ kind: 'watchCheck' });
      this.step();
    }
    this.ops.push({ kind: 'watchCheck', note: 'final' });
    return this.ops;
  }

  private send(body: OpBody, member?: Member): void {
    const isWrite = !['range', 'leaseTimeToLive', 'leaseLeases', 'hashKV'].includes(body.kind);
    const target = member ?? (this.rng.int(0, 2) as Member);
    if (isWrite) this.lastWriteMember = target;
    this.ops.push({ ...body, member: target } as Op);
  }

  /** Reads that are not linearizable go to the member that answered the last write (it has applied it). */
  private sendRead(body: OpBody, serializable: boolean): void {
    this.send(body, serializable ? this.lastWriteMember : undefined);
  }

  private prologue(): void {
    // The empty store, and etcd's compacted revision of -1: compact(0) succeeds once on a fresh store.
    this.send({ kind: 'range', req: { key: '\x00', rangeEnd: '\x00' } });
    if (this.rng.chance(0.5)) {
      this.send({ kind: 'compact', req: { revision: 0 }, note: 'compact(0) on a fresh store' });
      this.send({ kind: 'compact', req: { revision: 0 } });
    }
    this.send({ kind: 'txn', req: { success: [rangeOp({ key: 'a', revision: -1 })] }, note: 'negative revision in a txn range' });
    this.send({ kind: 'compact', req: { revision: -1 } });
    this.send({ kind: 'hashKV', req: { revision: 0 } });
    this.watch({ key: '\x00', rangeEnd: '\x00', startRevision: 1, prevKv: true }, 'everything from revision 1');
  }

  private step(): void {
    const rng = this.rng;
    const action = rng.weighted<() => void>([
      [24, () => this.put()],
      [22, () => this.range()],
      [7, () => this.deleteRange()],
      [14, () => this.txn()],
      [3, () => this.special()],
      [2, () => this.compact()],
      [8, () => this.lease()],
      [5, () => this.watchOp()],
      [6, () => this.errorCase()],
      [1, () => this.send({ kind: 'hashKV', req: { revision: this.revision() } })],
      [0.3, () => this.expiry()],
    ]);
    action();
  }

  // ---- values ----

  private key(): string {
    return this.rng.pick(KEYS);
  }

  private value(): string {
    return this.rng.chance(0.03) ? 'w'.repeat(this.rng.int(200, 3000)) : this.rng.pick(VALUES);
  }

  /** A range end for `key`: none, '\0' (to the end), the prefix end, or another key (maybe before it). */
  private rangeEnd(key: string): string {
    return this.rng.weighted([
      [4, ''],
      [2, '\x00'],
      [3, prefixEnd(key)],
      [1, this.key()],
    ]);
  }

  /** A revision to read at: current, recent, old, compacted, future, or negative. */
  private revision(): number | string {
    return this.rng.weighted<number | string>([
      [6, 0],
      [3, `$rev-${this.rng.int(0, 3)}`],
      [2, `$rev-${this.rng.int(4, 30)}`],
      [1, '$compact'],
      [1, '$compact-1'],
      [1, `$rev+${this.rng.int(1, 2)}`],
      [1, -this.rng.int(1, 2)],
    ]);
  }

  private lease(): void {
    const rng = this.rng;
    const slot = rng.int(0, LEASE_SLOTS - 1);
    const ref = `$lease:${slot}`;
    rng.weighted<() => void>([
      [4, () => this.grant(slot, rng.pick([30, 600, 3600]))],
      [2, () => this.send({ kind: 'leaseRevoke', req: { ID: ref } })],
      [3, () => this.send({ kind: 'leaseTimeToLive', req: { ID: ref, keys: rng.chance(0.6) } })],
      [2, () => this.send({ kind: 'leaseLeases', req: {} })],
      [2, () => this.send({ kind: 'leaseKeepAlive', req: { ID: ref } })],
      [2, () => this.put(slot)],
      [1, () => {
        // A TTL below etcd's minimum (raised to 2 s), revoked at once so it never expires on its own.
        this.grant(slot, rng.int(-1, 1));
        this.send({ kind: 'leaseRevoke', req: { ID: ref } });
      }],
    ])();
  }

  /** A lease of the minimum TTL (2 s) with keys, left to expire: both clusters revoke it on their own. */
  private expiry(): void {
    const slot = 2 * this.rng.int(0, LEASE_SLOTS / 2 - 1); // explicit ID
    const note = 'lease expiry';
    this.send({ kind: 'leaseGrant', req: { ID: `$lease:${slot}`, TTL: 2 }, slot: null, note });
    for (let i = this.rng.int(1, 3); i > 0; i--) this.send({ kind: 'put', req: { key: this.key(), value: 'expiring', lease: `$lease:${slot}` }, note });
    this.ops.push({ kind: 'sleep', ms: 4_000, note });
    this.send({ kind: 'leaseTimeToLive', req: { ID: `$lease:${slot}`, keys: true }, note });
    this.send({ kind: 'range', req: { key: '\x00', rangeEnd: '\x00' }, note });
  }

  private grant(slot: number, ttl: number): void {
    const explicit = slot % 2 === 0;
    this.send({ kind: 'leaseGrant', req: { ID: explicit ? `$lease:${slot}` : 0, TTL: ttl }, slot: explicit ? null : slot });
  }

  // ---- KV ----

  private putReq(leaseSlot: number | null = null): Req {
    const rng = this.rng;
    const req: Req = { key: this.key(), value: this.value(), prevKv: rng.chance(0.4) };
    if (leaseSlot !== null || rng.chance(0.12)) req.lease = `$lease:${leaseSlot ?? rng.int(0, LEASE_SLOTS - 1)}`;
    if (rng.chance(0.1)) {
      req.ignoreValue = true;
      req.value = rng.chance(0.85) ? '' : 'not empty';
    }
    if (rng.chance(0.1)) {
      req.ignoreLease = true;
      if (rng.chance(0.85)) delete req.lease;
    }
    return req;
  }

  private put(leaseSlot: number | null = null): void {
    this.send({ kind: 'put', req: this.putReq(leaseSlot) });
  }

  /**
   * `readable`: only revisions a read can be served at. A write txn's top-level range ops must use
   * those: etcd 3.4 strips them from the txn on every member but the one that received it
   * (removeNeedlessRangeReqs), so a compacted or future revision there fails the txn on that member
   * only while the others apply its writes, and the cluster diverges (docs/COMPATIBILITY.md).
   */
  private rangeReq(readable = false): Req {
    const rng = this.rng;
    const key = this.key();
    const req: Req = { key, rangeEnd: this.rangeEnd(key) };
    if (rng.chance(0.3)) req.limit = rng.int(1, 5);
    if (rng.chance(0.35)) req.revision = readable ? rng.pick([0, `$readable-${rng.int(0, 20)}`]) : this.revision();
    if (rng.chance(0.35)) req.sortOrder = rng.pick(['NONE', 'ASCEND', 'DESCEND']);
    if (rng.chance(0.35)) req.sortTarget = rng.pick(['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE']);
    if (rng.chance(0.15)) req.keysOnly = true;
    if (rng.chance(0.1)) req.countOnly = true;
    for (const field of ['minModRevision', 'maxModRevision', 'minCreateRevision', 'maxCreateRevision']) {
      if (rng.chance(0.08)) req[field] = `$rev-${rng.int(0, 12)}`;
    }
    return req;
  }

  private range(): void {
    const req = this.rangeReq();
    if (this.rng.chance(0.1) && req.revision === undefined) req.serializable = true;
    this.sendRead({ kind: 'range', req }, req.serializable === true);
  }

  private deleteReq(): Req {
    const key = this.key();
    return { key, rangeEnd: this.rng.chance(0.6) ? '' : this.rangeEnd(key), prevKv: this.rng.chance(0.5) };
  }

  private deleteRange(): void {
    this.send({ kind: 'deleteRange', req: this.deleteReq() });
  }

  private compareReq(): Req {
    const rng = this.rng;
    const key = this.key();
    const target = rng.pick(['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE']);
    const req: Req = { key, target, result: rng.pick(['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL']) };
    if (rng.chance(0.2)) req.rangeEnd = rng.chance(0.3) ? '\x00' : prefixEnd(key);
    switch (target) {
      case 'VERSION':
        req.version = rng.int(0, 3);
        break;
      case 'CREATE':
        req.createRevision = rng.chance(0.2) ? 0 : `$rev-${rng.int(0, 15)}`;
        break;
      case 'MOD':
        req.modRevision = rng.chance(0.2) ? 0 : `$rev-${rng.int(0, 15)}`;
        break;
      case 'VALUE':
        req.value = rng.pick(VALUES);
        break;
      case 'LEASE':
        req.lease = rng.chance(0.4) ? 0 : `$lease:${rng.int(0, LEASE_SLOTS - 1)}`;
        break;
    }
    return req;
  }

  private requestOp(depth: number): Req {
    return this.rng.weighted<() => Req>([
      [4, () => ({ requestPut: this.putReq() })],
      [4, () => ({ requestRange: this.rangeReq(depth === 0) })],
      [2, () => ({ requestDeleteRange: this.deleteReq() })],
      [depth < 2 ? 1 : 0, () => ({ requestTxn: this.txnReq(depth + 1) })],
    ])();
  }

  private txnReq(depth = 0): Req {
    const rng = this.rng;
    const list = (max: number, make: () => Req) => Array.from({ length: rng.int(0, max) }, make);
    return {
      compare: list(3, () => this.compareReq()),
      success: list(3, () => this.requestOp(depth)),
      failure: list(2, () => this.requestOp(depth)),
    };
  }

  private txn(): void {
    const req = this.txnReq();
    if (hasDeleteToEnd(req)) stripIgnoreFlags(req);
    // etcd serves a txn with no ops (compares only) as a serializable read: on a follower it may
    // not have applied the last write yet. Send it where that write was answered.
    const noOps = (req.success as Req[]).length === 0 && (req.failure as Req[]).length === 0;
    this.sendRead({ kind: 'txn', req }, noOps);
  }

  /** Txns that write one key more than once in one revision, which etcd accepts (sub-revisions). */
  private special(): void {
    const k = this.key();
    const put = (key: string, value = this.value()) => ({ requestPut: { key, value, prevKv: true } });
    const del = (key: string, rangeEnd = '') => ({ requestDeleteRange: { key, rangeEnd, prevKv: true } });
    const txn = (...success: Req[]) => ({ requestTxn: { success } });
    const shapes: [string, Req[]][] = [
      ['[txn{put k}, txn{del k}]', [txn(put(k)), txn(del(k))]],
      ['[put k, del k.."\\0"]', [put(k), del(k, '\x00')]],
      ['[del k.."\\0", put k]', [del(k, '\x00'), put(k)]],
      ['[del k.."\\0", put k, txn{del k.."\\0"}]', [del(k, '\x00'), put(k), txn(del(k, '\x00'))]],
      ['[txn{put k}, txn{del k}, range k]', [txn(put(k)), txn(del(k)), { requestRange: { key: k } }]],
      ['[put k, range k, del k.."\\0", range k.."\\0"]', [put(k), { requestRange: { key: k } }, del(k, '\x00'), { requestRange: { key: k, rangeEnd: '\x00' } }]],
      ['[txn{put k}, txn{put k}] (duplicate)', [txn(put(k)), txn(put(k))]],
      ['[txn{del k}, txn{put k}] (duplicate)', [txn(del(k)), txn(put(k))]],
      ['[put k, put k] (duplicate)', [put(k), put(k)]],
      ['[put k, del k] (duplicate)', [put(k), del(k)]],
    ];
    const [note, success] = this.rng.pick(shapes);
    this.send({ kind: 'txn', req: { success }, note });
  }

  private compact(): void {
    const revision = this.rng.weighted<number | string>([
      [5, `$rev-${this.rng.int(2, 12)}`],
      [1, '$compact'],
      [1, '$rev+1'],
      [1, '$rev'],
    ]);
    this.send({ kind: 'compact', req: { revision, physical: this.rng.chance(0.5) } });
  }

  // ---- watch ----

  private watch(req: Req, note?: string): void {
    this.watchCreates.push(this.ops.length);
    this.ops.push({ kind: 'watchCreate', stream: this.rng.int(0, WATCH_STREAMS - 1), req, note });
  }

  private watchOp(): void {
    const rng = this.rng;
    if (rng.chance(0.2) && this.watchCreates.length > 0) {
      const watch = rng.pick(this.watchCreates);
      const create = this.ops[watch];
      if (create.kind !== 'watchCreate') throw new Error('watch creates are tracked');
      this.ops.push({ kind: 'watchCancel', stream: create.stream, watch });
      return;
    }
    const key = this.key();
    const req: Req = { key, rangeEnd: this.rangeEnd(key), startRevision: this.revision() };
    const filters: string[] = [];
    if (rng.chance(0.15)) filters.push('NOPUT');
    if (rng.chance(0.15)) filters.push('NODELETE');
    if (filters.length > 0) req.filters = filters;
    if (rng.chance(0.5)) req.prevKv = true;
    if (rng.chance(0.1)) req.watchId = this.nextExplicitWatchId++;
    this.watch(req);
  }

  // ---- errors ----

  private errorCase(): void {
    const rng = this.rng;
    const cases: [string, () => void][] = [
      ['empty key put', () => this.send({ kind: 'put', req: { key: '', value: 'x' } })],
      ['empty key range', () => this.send({ kind: 'range', req: { key: '' } })],
      ['empty key delete', () => this.send({ kind: 'deleteRange', req: { key: '', rangeEnd: 'z' } })],
      ['empty key compare', () => this.send({ kind: 'txn', req: { compare: [{ key: '', target: 'VERSION' }] } })],
      ['empty key in a nested put', () => this.send({ kind: 'txn', req: { success: [{ requestTxn: { success: [{ requestPut: { key: '' } }] } }] } })],
      ['too many ops', () => this.send({ kind: 'txn', req: { success: Array.from({ length: 129 }, (_, i) => ({ requestPut: { key: `t/${i}` } })) } })],
      ['too many compares', () => this.send({ kind: 'txn', req: { compare: Array.from({ length: 129 }, () => ({ key: 'a' })) } })],
      ['128 ops', () => this.send({ kind: 'txn', req: { success: Array.from({ length: 128 }, (_, i) => ({ requestRange: { key: `t/${i}` } })) } })],
      ['duplicate put in txn', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'a' } }, { requestPut: { key: 'a' } }] } })],
      ['put inside a deleted range', () => this.send({ kind: 'txn', req: { failure: [{ requestDeleteRange: { key: 'a', rangeEnd: 'b' } }, { requestPut: { key: 'a/1' } }] } })],
      ['request too large', () => this.send({ kind: 'put', req: { key: 'big', value: `$big:${MAX_REQUEST_BYTES + 100}` } })],
      ['large but allowed', () => this.send({ kind: 'put', req: { key: 'big', value: `$big:${MAX_REQUEST_BYTES - 2000}` } })],
      ['txn too large', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'big', value: `$big:${MAX_REQUEST_BYTES}` } }] } })],
      ['read-only txn over the request limit', () => this.send({ kind: 'txn', req: { compare: [{ key: 'a', target: 'VALUE', value: `$big:${MAX_REQUEST_BYTES + 10}` }], success: [{ requestRange: { key: 'a' } }] } })],
      ['unknown lease in put', () => this.send({ kind: 'put', req: { key: 'a', value: 'x', lease: 123456789 } })],
      ['unknown lease in txn put', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'a', lease: 123456789 } }] } })],
      ['revoke unknown lease', () => this.send({ kind: 'leaseRevoke', req: { ID: 123456789 } })],
      ['time-to-live of unknown lease', () => this.send({ kind: 'leaseTimeToLive', req: { ID: 123456789, keys: true } })],
      ['keepalive of unknown lease', () => this.send({ kind: 'leaseKeepAlive', req: { ID: 123456789 } })],
      ['lease TTL too large', () => this.send({ kind: 'leaseGrant', req: { ID: 0, TTL: 9_000_000_001 }, slot: null })],
      ['lease grant with a taken ID', () => this.send({ kind: 'leaseGrant', req: { ID: `$lease:0`, TTL: 60 }, slot: null })],
      ['ignore_value with a value', () => this.send({ kind: 'put', req: { key: 'a', value: 'x', ignoreValue: true } })],
      ['ignore_lease with a lease', () => this.send({ kind: 'put', req: { key: 'a', lease: '$lease:0', ignoreLease: true } })],
      ['ignore_value of a missing key', () => this.send({ kind: 'put', req: { key: 'no-such-key', ignoreValue: true } })],
      ['ignore_lease in a txn on a missing key', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'no-such-key', ignoreLease: true } }] } })],
      ['compacted revision read', () => this.send({ kind: 'range', req: { key: 'a', revision: '$compact-1' } })],
      ['future revision read', () => this.send({ kind: 'range', req: { key: 'a', revision: '$rev+1' } })],
      // Bad revisions in a write txn only below the top level (see rangeReq), or in read-only txns.
      ['future revision in a nested txn range', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'a' } }, nestedRange({ key: 'a', revision: '$rev+1' })] } })],
      ['compacted revision in a nested txn range', () => this.send({ kind: 'txn', req: { success: [{ requestPut: { key: 'a' } }, nestedRange({ key: 'a', revision: '$compact-1' })] } })],
      ['compacted revision in a txn range', () => this.send({ kind: 'txn', req: { success: [{ requestRange: { key: 'a', revision: '$compact-1' } }] } })],
      ['future revision in a txn range', () => this.send({ kind: 'txn', req: { failure: [{ requestRange: { key: 'a', revision: '$rev+1' } }] } })],
      ['negative revision in a txn range', () => this.send({ kind: 'txn', req: { success: [{ requestRange: { key: 'a', revision: -rng.int(1, 3) } }] } })],
      ['negative revision in a nested txn range', () => this.send({ kind: 'txn', req: { success: [{ requestDeleteRange: { key: 'b' } }, nestedRange({ key: 'a', revision: -rng.int(1, 3) })] } })],
      ['compact a future revision', () => this.send({ kind: 'compact', req: { revision: '$rev+5' } })],
      ['compact the compacted revision', () => this.send({ kind: 'compact', req: { revision: '$compact' } })],
      ['hashKV at a compacted revision', () => this.send({ kind: 'hashKV', req: { revision: '$compact' } })],
      ['hashKV at a future revision', () => this.send({ kind: 'hashKV', req: { revision: '$rev+1' } })],
      ['watch with an empty range', () => this.watch({ key: 'b', rangeEnd: 'a' })],
      ['watch from a compacted revision', () => this.watch({ key: 'a', rangeEnd: '\x00', startRevision: '$compact-1' })],
      ['watch with a negative start', () => this.watch({ key: 'a', startRevision: -3 })],
      ['watch with a taken watch ID', () => this.watch({ key: 'a', watchId: 100 })],
    ];
    const [note, run] = rng.pick(cases);
    const before = this.ops.length;
    run();
    for (let i = before; i < this.ops.length; i++) this.ops[i].note ??= note;
  }
}

function rangeOp(req: Req): Req {
  return { requestRange: req };
}

/** Whether a txn (at any depth) deletes with range_end "\0". */
function hasDeleteToEnd(txn: Req): boolean {
  return [...((txn.success as Req[]) ?? []), ...((txn.failure as Req[]) ?? [])].some((op) => {
    if (op.requestTxn !== undefined) return hasDeleteToEnd(op.requestTxn as Req);
    return op.requestDeleteRange !== undefined && (op.requestDeleteRange as Req).rangeEnd === '\x00';
  });
}

/**
 * Makes every put of a txn a plain put. A put with ignore_value/ignore_lease after a "\0" delete
 * of its key in the same txn passes etcd's checks (made on the state before the txn) and then
 * fails while applying, and every etcd 3.4 member panics (docs/COMPATIBILITY.md, D15).
 */
function stripIgnoreFlags(txn: Req): void {
  for (const op of [...((txn.success as Req[]) ?? []), ...((txn.failure as Req[]) ?? [])]) {
    if (op.requestTxn !== undefined) stripIgnoreFlags(op.requestTxn as Req);
    const put = op.requestPut as Req | undefined;
    if (put === undefined || (put.ignoreValue !== true && put.ignoreLease !== true)) continue;
    delete put.ignoreValue;
    delete put.ignoreLease;
    put.value ??= 'v';
  }
}

/** A range op one txn level down, which etcd checks on every member. */
function nestedRange(req: Req): Req {
  return { requestTxn: { success: [rangeOp(req)] } };
}

/** The operation sequence for `seed`: `count` ops (at least a prologue's worth), ending with a watch check. */
export function generateOps(seed: number, count: number): Op[] {
  return new Generator(new Rng(seed)).generate(Math.max(count, 10));
}
