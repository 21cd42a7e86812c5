// etcd's v3lock and v3election services on the node: clientv3/concurrency's Mutex and Election,
// run server-side as etcd runs them, through this node's own KV (linearizable, through Raft),
// Lease and Watch services. Never touches a store directly.
import type { AuthStamp, ElectionBackend, LeaderKey, LockBackend } from '../api/index.ts';
import { ApiErrors } from '../api/index.ts';
import type {
  Compare,
  KeyValue,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  TxnResponse,
  WatchEvent,
  WatchHandle,
} from '../mvcc/index.ts';
import { prefixEnd, rangeRequest } from '../mvcc/index.ts';
import { assert, EtcdError, Errors, GrpcCode } from '../util/index.ts';
import { KvService } from './kv.ts';
import type { TesseraNode } from './node.ts';
import { LeaseService } from './services.ts';
import type { WatchService } from './services.ts';

/** concurrency.defaultSessionTTL: the lease etcd grants when a Lock or Campaign names lease 0. */
const defaultSessionTtlSeconds = 60;
/** clientv3 retries a read that failed with UNAVAILABLE at most this often (defaultUnaryMaxRetries). */
const maxReadRetries = 100;
/** How long a read with no client signal to follow (Leader) keeps retrying. */
const readRetryBudgetMs = 10_000;
/** Pause between read retries (clientv3's defaultBackoffWaitBetween is 25 ms; we grow it to this cap). */
const maxReadRetryDelayMs = 500;
/** Read failures clientv3 would retry (UNAVAILABLE while a leader is elected); a stopping node is not one. */
const transientReadErrors = new Set(
  [Errors.noLeader(), Errors.timeout(), Errors.timeoutDueToLeaderFail(), Errors.leaderChanged()].map((e) => e.message),
);
/** A waiter re-checks that its watch still lives this often (a watch lost to a failed snapshot move). */
const watchCheckIntervalMs = 1_000;

const EMPTY = new Uint8Array(0);

/** concurrency.ErrSessionExpired: the waiter key vanished (its lease expired) while it waited. */
const sessionExpired = () => new EtcdError(GrpcCode.UNKNOWN, 'mutex: session is expired');
/** What concurrency.waitDelete returns when its watch channel closes without a delete. */
const lostWatcher = () => new EtcdError(GrpcCode.UNKNOWN, 'lost watcher waiting for delete');

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};
const slash = new TextEncoder().encode('/');
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** `<name>/`: the key prefix of a mutex or an election (concurrency.NewMutex, NewElection). */
const prefixOf = (name: Uint8Array) => concat(name, slash);
/** `<prefix><lease in hex>`: the waiter key of a mutex, the candidate key of an election (`%s%x`). */
const sessionKey = (prefix: Uint8Array, lease: number) => concat(prefix, new TextEncoder().encode(lease.toString(16)));

const rangeOf = rangeRequest;

/** clientv3.WithFirstCreate (ascend) / WithLastCreate (descend) on a prefix, with WithMaxCreateRev. */
const byCreate = (prefix: Uint8Array, order: 'ascend' | 'descend', maxCreateRevision = 0): RangeRequest =>
  rangeOf(prefix, { rangeEnd: prefixEnd(prefix), sortTarget: 'create', sortOrder: order, limit: 1, maxCreateRevision });

const createRevisionIs = (key: Uint8Array, createRevision: number): Compare => ({
  result: 'equal',
  target: 'create',
  key,
  rangeEnd: EMPTY,
  version: 0,
  createRevision,
  modRevision: 0,
  value: EMPTY,
  lease: 0,
});
const putOp = (key: Uint8Array, value: Uint8Array, lease: number): RequestOp => ({
  type: 'put',
  put: { key, value, lease, prevKv: false, ignoreValue: false, ignoreLease: false },
});
const getOp = (range: RangeRequest): RequestOp => ({ type: 'range', range });
const deleteOp = (key: Uint8Array): RequestOp => ({ type: 'deleteRange', deleteRange: { key, rangeEnd: EMPTY, prevKv: false } });

function rangeAt(response: TxnResponse, i: number): RangeResponse {
  const op = response.responses[i];
  assert(op !== undefined && op.type === 'range', () => `txn response ${i} is not a range`);
  return op.range;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new EtcdError(GrpcCode.CANCELLED, 'context canceled');
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller checks which). */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * One watch, pulled one event at a time. The sink keeps the batch it was handed and pauses the
 * watcher, so at most one batch is held (the store's history is the buffer, as in the Watch API).
 */
class WatchCursor {
  private events: WatchEvent[] = [];
  private revision = 0;
  private wake: (() => void) | null = null;
  private readonly handle: WatchHandle;

  constructor(watches: WatchService, key: Uint8Array, rangeEnd: Uint8Array, startRevision: number) {
    assert(startRevision > 0, 'a cursor starts at a known revision');
    this.handle = watches.watch(
      { key, rangeEnd, startRevision, noPut: false, noDelete: false, prevKv: false },
      (events, revision) => {
        this.events.push(...events);
        this.revision = revision;
        this.wake?.();
        return false;
      },
    );
  }

  /** The next event and the header revision of the watch response that carried it. */
  async next(signal: AbortSignal): Promise<{ event: WatchEvent; revision: number }> {
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      const event = this.events.shift();
      if (event !== undefined) return { event, revision: this.revision };
      if (this.handle.state === 'cancelled') throw lostWatcher();
      if (this.handle.state === 'paused') {
        this.handle.resume(); // replays what the store holds now; throws if it was compacted away
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.wake = null;
          resolve();
        };
        const timer = setTimeout(done, watchCheckIntervalMs);
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
    }
  }

  close(): void {
    this.handle.cancel();
  }
}

/** The client side of clientv3/concurrency, bound to this node's services. */
class Concurrency {
  readonly kv: KvService;
  private readonly leases: LeaseService;

  constructor(
    private readonly node: TesseraNode,
    readonly watches: WatchService,
  ) {
    this.kv = new KvService(node);
    this.leases = new LeaseService(node);
  }

  /** The caller's signal, also aborted when the node stops: a waiting Lock or Campaign must not hold up shutdown. */
  untilStop(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, this.node.stopSignal]);
  }

  /** concurrency.NewSession(WithLease(id)): lease 0 gets a new 60 s lease (orphaned: never kept alive). */
  async session(lease: number): Promise<number> {
    if (lease !== 0) return lease;
    const granted = await this.leases.leaseGrant({ id: 0, ttl: defaultSessionTtlSeconds });
    assert(granted.id !== 0, 'a granted lease has an ID');
    return granted.id;
  }

  /**
   * A linearizable Get, retried on transient UNAVAILABLE answers as clientv3 retries repeatable
   * calls: until `signal` aborts, or for `readRetryBudgetMs` when the caller has no signal.
   */
  async read(req: RangeRequest, signal?: AbortSignal, stamp?: AuthStamp): Promise<RangeResponse> {
    const giveUpAtMs = signal ? Infinity : performance.now() + readRetryBudgetMs;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw abortError(signal);
      try {
        return await this.kv.range(req, stamp);
      } catch (error) {
        const transient = error instanceof EtcdError && transientReadErrors.has(error.message);
        if (!transient || attempt >= maxReadRetries || performance.now() >= giveUpAtMs) throw error;
        this.node.logger.debug({ err: error, attempt }, 'lock/election read failed; retrying');
        await pause(Math.min(25 * attempt, maxReadRetryDelayMs), signal);
      }
    }
  }

  /** concurrency.waitDelete: until `key` is deleted at or after `fromRevision`. */
  async waitDelete(key: Uint8Array, fromRevision: number, signal: AbortSignal): Promise<void> {
    const cursor = new WatchCursor(this.watches, key, EMPTY, fromRevision);
    try {
      for (;;) {
        const { event } = await cursor.next(signal);
        if (event.type === 'delete') return;
      }
    } finally {
      cursor.close();
    }
  }

  /** concurrency.waitDeletes: until no key under `prefix` was created at or below `maxCreateRevision`. */
  async waitDeletes(prefix: Uint8Array, maxCreateRevision: number, signal: AbortSignal, stamp?: AuthStamp): Promise<ResponseHeader> {
    assert(maxCreateRevision >= 0, 'waitDeletes below a real revision');
    for (;;) {
      const response = await this.read(byCreate(prefix, 'descend', maxCreateRevision), signal, stamp);
      if (response.kvs.length === 0) return response.header;
      await this.waitDelete(response.kvs[0].key, response.header.revision, signal);
    }
  }

  /** A cleanup write that outlives the request (etcd runs it on client.Ctx()); its failure is only logged. */
  async cleanup(what: string, write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.node.logger.warn({ err: error }, `lock/election cleanup (${what}) failed; the lease will remove the key`);
    }
  }
}

/** v3lock: concurrency.Mutex under the caller's lease (etcd's lockServer). */
export class LockService implements LockBackend {
  private readonly c: Concurrency;

  constructor(node: TesseraNode, watches: WatchService) {
    this.c = new Concurrency(node, watches);
  }

  /** Mutex.Lock: the oldest waiter key under `name/` holds the lock; the others wait for their predecessor's delete. */
  async lock(req: { name: Uint8Array; lease: number }, callSignal: AbortSignal, stamp?: AuthStamp): Promise<{ header: ResponseHeader; key: Uint8Array }> {
    const signal = this.c.untilStop(callSignal);
    const lease = await this.c.session(req.lease);
    const prefix = prefixOf(req.name);
    const key = sessionKey(prefix, lease);
    // Put self among the waiters, or reuse the key this session already has; fetch the owner too.
    const response = await this.c.kv.txn({
      compare: [createRevisionIs(key, 0)],
      success: [putOp(key, EMPTY, lease), getOp(byCreate(prefix, 'ascend'))],
      failure: [getOp(rangeOf(key)), getOp(byCreate(prefix, 'ascend'))],
    }, stamp);
    let myRevision = response.header.revision;
    if (!response.succeeded) {
      const mine = rangeAt(response, 0).kvs[0];
      assert(mine !== undefined, 'the key that failed create_revision == 0 exists in the same txn');
      myRevision = mine.createRevision;
    }
    const owner = rangeAt(response, 1).kvs[0];
    if (owner === undefined || owner.createRevision === myRevision) return { header: response.header, key };
    let held: RangeResponse;
    try {
      await this.c.waitDeletes(prefix, myRevision - 1, signal, stamp);
      // etcd 3.5+: make sure the session did not expire while waiting (the key still exists).
      held = await this.c.read(rangeOf(key), signal, stamp);
    } catch (error) {
      await this.c.cleanup('withdraw waiter', () => this.unlock({ key }, stamp));
      throw error;
    }
    if (held.kvs.length === 0) throw sessionExpired();
    return { header: held.header, key };
  }

  /** lockServer.Unlock: a plain delete of the owner key. */
  async unlock(req: { key: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }> {
    const response = await this.c.kv.deleteRange({ key: req.key, rangeEnd: EMPTY, prevKv: false }, stamp);
    return { header: response.header };
  }
}

/** v3election: concurrency.Election under the caller's lease (etcd's electionServer). */
export class ElectionService implements ElectionBackend {
  private readonly c: Concurrency;

  constructor(node: TesseraNode, watches: WatchService) {
    this.c = new Concurrency(node, watches);
  }

  /** Election.Campaign: the candidate key with the lowest create revision under `name/` leads. */
  async campaign(
    req: { name: Uint8Array; lease: number; value: Uint8Array },
    callSignal: AbortSignal,
    stamp?: AuthStamp,
  ): Promise<{ header: ResponseHeader; leader: LeaderKey }> {
    const signal = this.c.untilStop(callSignal);
    const lease = await this.c.session(req.lease);
    const prefix = prefixOf(req.name);
    const key = sessionKey(prefix, lease);
    const response = await this.c.kv.txn({
      compare: [createRevisionIs(key, 0)],
      success: [putOp(key, req.value, lease)],
      failure: [getOp(rangeOf(key))],
    }, stamp);
    const leader: LeaderKey = { name: req.name, key, rev: response.header.revision, lease };
    if (!response.succeeded) {
      const existing = rangeAt(response, 0).kvs[0];
      assert(existing !== undefined, 'the key that failed create_revision == 0 exists in the same txn');
      leader.rev = existing.createRevision;
      if (!sameBytes(existing.value, req.value)) {
        try {
          await this.proclaimAs(leader, req.value, stamp);
        } catch (error) {
          await this.c.cleanup('resign after failed proclaim', () => this.resignAs(leader, stamp));
          throw error;
        }
      }
    }
    try {
      await this.c.waitDeletes(prefix, leader.rev - 1, signal, stamp);
    } catch (error) {
      // Clean up only when the client went away (etcd checks ctx.Done()); other failures keep the key.
      if (signal.aborted) await this.c.cleanup('resign abandoned campaign', () => this.resignAs(leader, stamp));
      throw error;
    }
    return { header: response.header, leader };
  }

  /** Election.Proclaim through ResumeElection (a session on the leader key's lease). */
  async proclaim(req: { leader: LeaderKey; value: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }> {
    const lease = await this.c.session(req.leader.lease);
    return this.proclaimAs({ ...req.leader, lease }, req.value, stamp);
  }

  private async proclaimAs(leader: LeaderKey, value: Uint8Array, stamp?: AuthStamp): Promise<{ header: ResponseHeader }> {
    const response = await this.c.kv.txn({
      compare: [createRevisionIs(leader.key, leader.rev)],
      success: [putOp(leader.key, value, leader.lease)],
      failure: [],
    }, stamp);
    if (!response.succeeded) throw ApiErrors.electionNotLeader();
    return { header: response.header };
  }

  /** Election.Leader: the oldest candidate key, or "election: no leader". */
  async leader(req: { name: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader; kv: KeyValue }> {
    const response = await this.c.read(byCreate(prefixOf(req.name), 'ascend'), undefined, stamp);
    const kv = response.kvs[0];
    if (kv === undefined) throw ApiErrors.electionNoLeader();
    return { header: response.header, kv };
  }

  /** Election.Resign through ResumeElection: deletes the key if it is still this leader's; not an error otherwise. */
  async resign(req: { leader: LeaderKey }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }> {
    const lease = await this.c.session(req.leader.lease);
    return this.resignAs({ ...req.leader, lease }, stamp);
  }

  private async resignAs(leader: LeaderKey, stamp?: AuthStamp): Promise<{ header: ResponseHeader }> {
    const response = await this.c.kv.txn({
      compare: [createRevisionIs(leader.key, leader.rev)],
      success: [deleteOp(leader.key)],
      failure: [],
    }, stamp);
    return { header: response.header };
  }

  /**
   * Election.observe: the leader now (or the first put under the prefix when there is none), then
   * each put of that leader's key in order, until it is deleted; then again. Ends (OK) when the
   * client leaves or a read or watch fails, as etcd closes its channel.
   */
  async *observe(req: { name: Uint8Array }, callSignal: AbortSignal): AsyncIterable<{ header: ResponseHeader; kv: KeyValue }> {
    const signal = this.c.untilStop(callSignal);
    const prefix = prefixOf(req.name);
    while (!signal.aborted) {
      const current = await this.observeLeader(prefix, signal);
      if (current === null) return;
      yield current;
      const cursor = new WatchCursor(this.c.watches, current.kv.key, EMPTY, current.header.revision + 1);
      try {
        for (;;) {
          const next = await cursor.next(signal).catch(() => null);
          if (next === null) return;
          if (next.event.type === 'delete') break;
          yield { header: { revision: next.revision }, kv: next.event.kv };
        }
      } finally {
        cursor.close();
      }
    }
  }

  /** The first leader observe reports: the oldest key now, else the first key put under the prefix. */
  private async observeLeader(
    prefix: Uint8Array,
    signal: AbortSignal,
  ): Promise<{ header: ResponseHeader; kv: KeyValue } | null> {
    let response: RangeResponse;
    try {
      response = await this.c.read(byCreate(prefix, 'ascend'), signal);
    } catch {
      return null;
    }
    if (response.kvs.length > 0) return { header: response.header, kv: response.kvs[0] };
    const cursor = new WatchCursor(this.c.watches, prefix, prefixEnd(prefix), Math.max(1, response.header.revision));
    try {
      for (;;) {
        const next = await cursor.next(signal).catch(() => null);
        if (next === null) return null;
        // Only puts: a delete would make observe spin (etcd). The header is the put's revision.
        if (next.event.type === 'put') return { header: { revision: next.event.kv.modRevision }, kv: next.event.kv };
      }
    } finally {
      cursor.close();
    }
  }
}
