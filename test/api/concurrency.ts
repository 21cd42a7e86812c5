// Lock and Election backends for the API tests, following etcd's clientv3/concurrency Mutex and
// Election step by step, on the real MvccStore (txns, ranges by create revision, watches).
import type { ElectionBackend, LeaderKey, LockBackend } from '../../src/api/index.ts';
import { ApiErrors } from '../../src/api/index.ts';
import type {
  KeyValue,
  MvccStore,
  RangeRequest,
  RequestOp,
  ResponseHeader,
  WatchHandle,
} from '../../src/mvcc/index.ts';
import { prefixEnd } from '../../src/mvcc/index.ts';
import { rangeRequest } from './backends.ts';

const EMPTY = new Uint8Array(0);
const concat = (a: Uint8Array, b: Uint8Array) => Buffer.concat([a, b]);
const slash = Buffer.from('/');

const put = (key: Uint8Array, value: Uint8Array, lease: number): RequestOp => ({
  type: 'put',
  put: { key, value, lease, prevKv: false, ignoreValue: false, ignoreLease: false },
});
const get = (key: Uint8Array, overrides: Partial<RangeRequest> = {}): RequestOp => ({
  type: 'range',
  range: { ...rangeRequest(''), key, ...overrides },
});
/** clientv3.WithFirstCreate / WithLastCreate on a prefix. */
const byCreate = (
  prefix: Uint8Array,
  order: 'ascend' | 'descend',
  maxCreateRevision = 0,
): Partial<RangeRequest> => ({
  rangeEnd: prefixEnd(prefix),
  sortTarget: 'create',
  sortOrder: order,
  limit: 1,
  maxCreateRevision,
});
const createRevisionIs = (key: Uint8Array, createRevision: number) => ({
  result: 'equal' as const,
  target: 'create' as const,
  key,
  rangeEnd: EMPTY,
  version: 0,
  createRevision,
  modRevision: 0,
  value: EMPTY,
  lease: 0,
});

/** Resolves at the first event of `type` on [key, rangeEnd) from `fromRevision`; rejects when `signal` aborts. */
function waitFor(
  store: MvccStore,
  key: Uint8Array,
  rangeEnd: Uint8Array,
  fromRevision: number,
  type: 'put' | 'delete' | 'any',
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    let handle: WatchHandle | null = null;
    const finish = () => {
      done = true;
      handle?.cancel();
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      finish();
      reject(signal.reason);
    };
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', onAbort);
    const options = {
      key,
      rangeEnd,
      startRevision: fromRevision,
      noPut: false,
      noDelete: false,
      prevKv: false,
    };
    handle = store.watch(options, (events) => {
      if (done || !events.some((event) => type === 'any' || event.type === type)) return true;
      done = true; // the handle may not be assigned yet (history replays inside watch())
      queueMicrotask(() => {
        finish();
        resolve();
      });
      return false;
    });
    if (done) handle.cancel();
  });
}

/** concurrency.waitDeletes: until no key under `prefix` was created at or below `maxCreateRevision`. */
async function waitDeletes(
  store: MvccStore,
  prefix: Uint8Array,
  maxCreateRevision: number,
  signal: AbortSignal,
): Promise<ResponseHeader> {
  for (;;) {
    const response = store.range({
      ...rangeRequest(''),
      key: prefix,
      ...byCreate(prefix, 'descend', maxCreateRevision),
    });
    if (response.kvs.length === 0) return response.header;
    await waitFor(store, response.kvs[0].key, EMPTY, response.header.revision, 'delete', signal);
  }
}

/** The mutex waiter key and election candidate key: `<prefix><lease in hex>`. */
const sessionKey = (prefix: Uint8Array, lease: number) => concat(prefix, Buffer.from(lease.toString(16)));

export class StoreLocks implements LockBackend {
  constructor(readonly store: MvccStore) {}

  async lock(
    req: { name: Uint8Array; lease: number },
    signal: AbortSignal,
  ): Promise<{ header: ResponseHeader; key: Uint8Array }> {
    const prefix = concat(req.name, slash);
    const key = sessionKey(prefix, req.lease);
    const { response } = this.store.txn({
      compare: [createRevisionIs(key, 0)],
      success: [put(key, EMPTY, req.lease), get(prefix, byCreate(prefix, 'ascend'))],
      failure: [get(key), get(prefix, byCreate(prefix, 'ascend'))],
    });
    const first = response.responses[0];
    const owner = response.responses[1];
    const myRevision =
      response.succeeded || first.type !== 'range'
        ? response.header.revision
        : first.range.kvs[0].createRevision;
    const ownerKvs = owner.type === 'range' ? owner.range.kvs : [];
    if (ownerKvs.length === 0 || ownerKvs[0].createRevision === myRevision)
      return { header: response.header, key };
    try {
      return { header: await waitDeletes(this.store, prefix, myRevision - 1, signal), key };
    } catch (error) {
      this.store.deleteRange({ key, rangeEnd: EMPTY, prevKv: false });
      throw error;
    }
  }

  async unlock(req: { key: Uint8Array }): Promise<{ header: ResponseHeader }> {
    return {
      header: this.store.deleteRange({ key: req.key, rangeEnd: EMPTY, prevKv: false }).response.header,
    };
  }
}

export class StoreElections implements ElectionBackend {
  constructor(readonly store: MvccStore) {}

  async campaign(
    req: { name: Uint8Array; lease: number; value: Uint8Array },
    signal: AbortSignal,
  ): Promise<{ header: ResponseHeader; leader: LeaderKey }> {
    const prefix = concat(req.name, slash);
    const key = sessionKey(prefix, req.lease);
    const { response } = this.store.txn({
      compare: [createRevisionIs(key, 0)],
      success: [put(key, req.value, req.lease)],
      failure: [get(key)],
    });
    let rev = response.header.revision;
    if (!response.succeeded) {
      const first = response.responses[0];
      const kv = first.type === 'range' ? first.range.kvs[0] : null;
      rev = kv?.createRevision ?? rev;
      if (kv !== null && Buffer.compare(kv.value, req.value) !== 0)
        await this.proclaim({ leader: { name: req.name, key, rev, lease: req.lease }, value: req.value });
    }
    const leader = { name: req.name, key, rev, lease: req.lease };
    try {
      await waitDeletes(this.store, prefix, rev - 1, signal);
    } catch (error) {
      if (signal.aborted) await this.resign({ leader });
      throw error;
    }
    return { header: response.header, leader };
  }

  async proclaim(req: { leader: LeaderKey; value: Uint8Array }): Promise<{ header: ResponseHeader }> {
    const { key, rev, lease } = req.leader;
    const { response } = this.store.txn({
      compare: [createRevisionIs(key, rev)],
      success: [put(key, req.value, lease)],
      failure: [],
    });
    if (!response.succeeded) throw ApiErrors.electionNotLeader();
    return { header: response.header };
  }

  async leader(req: { name: Uint8Array }): Promise<{ header: ResponseHeader; kv: KeyValue }> {
    const prefix = concat(req.name, slash);
    const response = this.store.range({ ...rangeRequest(''), key: prefix, ...byCreate(prefix, 'ascend') });
    if (response.kvs.length === 0) throw ApiErrors.electionNoLeader();
    return { header: response.header, kv: response.kvs[0] };
  }

  /** The leader now, then each change (a new value, a new leader), newest state only. */
  async *observe(
    req: { name: Uint8Array },
    signal: AbortSignal,
  ): AsyncIterable<{ header: ResponseHeader; kv: KeyValue }> {
    const prefix = concat(req.name, slash);
    let last: KeyValue | null = null;
    while (!signal.aborted) {
      const response = this.store.range({ ...rangeRequest(''), key: prefix, ...byCreate(prefix, 'ascend') });
      const kv = response.kvs[0];
      if (kv !== undefined && (last === null || kv.modRevision !== last.modRevision)) {
        last = kv;
        yield { header: { revision: kv.modRevision }, kv };
      }
      try {
        await waitFor(this.store, prefix, prefixEnd(prefix), response.header.revision + 1, 'any', signal);
      } catch {
        return; // aborted: the client left
      }
    }
  }

  async resign(req: { leader: LeaderKey }): Promise<{ header: ResponseHeader }> {
    const { key, rev } = req.leader;
    const { response } = this.store.txn({
      compare: [createRevisionIs(key, rev)],
      success: [{ type: 'deleteRange', deleteRange: { key, rangeEnd: EMPTY, prevKv: false } }],
      failure: [],
    });
    return { header: response.header };
  }
}
