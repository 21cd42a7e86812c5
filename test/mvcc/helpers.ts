// Request builders and small utilities shared by the mvcc tests (strings stand for UTF-8 bytes).
import type {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  KeyValue,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
  WatchEvent,
  WatchOptions,
} from '../../src/mvcc/index.ts';
import { prefixEnd as keyPrefixEnd, rangeRequest } from '../../src/mvcc/index.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const b = (s: string): Uint8Array => encoder.encode(s);
export const s = (bytes: Uint8Array): string => decoder.decode(bytes);
/** The prefix range end etcd clients compute (clientv3.GetPrefixRangeEnd), of a string prefix. */
export const prefixEnd = (prefix: string): Uint8Array => keyPrefixEnd(b(prefix));

export function rangeReq(key: string | Uint8Array, opts: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest(typeof key === 'string' ? b(key) : key, opts);
}

export function putReq(key: string, value: string, opts: Partial<PutRequest> = {}): PutRequest {
  return { key: b(key), value: b(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false, ...opts };
}

export function delReq(key: string, opts: Partial<DeleteRangeRequest> = {}): DeleteRangeRequest {
  return { key: b(key), rangeEnd: new Uint8Array(0), prevKv: false, ...opts };
}

export function cmp(key: string, target: CompareTarget, result: CompareResult, operand: number | string, rangeEnd?: Uint8Array): Compare {
  const c: Compare = {
    key: b(key),
    rangeEnd: rangeEnd ?? new Uint8Array(0),
    target,
    result,
    version: 0,
    createRevision: 0,
    modRevision: 0,
    value: new Uint8Array(0),
    lease: 0,
  };
  if (target === 'value') c.value = b(String(operand));
  else if (target === 'version') c.version = Number(operand);
  else if (target === 'create') c.createRevision = Number(operand);
  else if (target === 'mod') c.modRevision = Number(operand);
  else c.lease = Number(operand);
  return c;
}

export const opPut = (key: string, value: string, opts: Partial<PutRequest> = {}): RequestOp => ({ type: 'put', put: putReq(key, value, opts) });
export const opDel = (key: string, opts: Partial<DeleteRangeRequest> = {}): RequestOp => ({ type: 'deleteRange', deleteRange: delReq(key, opts) });
export const opRange = (key: string, opts: Partial<RangeRequest> = {}): RequestOp => ({ type: 'range', range: rangeReq(key, opts) });
export const opTxn = (txn: TxnRequest): RequestOp => ({ type: 'txn', txn });

export function txnReq(compare: Compare[], success: RequestOp[], failure: RequestOp[] = []): TxnRequest {
  return { compare, success, failure };
}

export function watchOpts(key: string, opts: Partial<WatchOptions> = {}): WatchOptions {
  return { key: b(key), rangeEnd: new Uint8Array(0), startRevision: 0, noPut: false, noDelete: false, prevKv: false, ...opts };
}

/** A readable summary of a kv: "key=value@mod(create,version,lease)". */
export function kvStr(kv: KeyValue | null): string {
  if (kv === null) return 'null';
  return `${s(kv.key)}=${s(kv.value)}@${kv.modRevision}(c${kv.createRevision},v${kv.version},l${kv.lease})`;
}

/** "PUT a=1@2" / "DELETE a@3", plus " prev=..." when prevKv is set. */
export function evStr(ev: WatchEvent): string {
  const head = ev.type === 'put' ? `PUT ${s(ev.kv.key)}=${s(ev.kv.value)}@${ev.kv.modRevision}` : `DELETE ${s(ev.kv.key)}@${ev.kv.modRevision}`;
  return ev.prevKv === null ? head : `${head} prev=${s(ev.prevKv.value)}@${ev.prevKv.modRevision}`;
}

export const keys = (kvs: KeyValue[]): string[] => kvs.map((kv) => s(kv.key));

/** Asserts `fn` throws an error whose message is `message`. */
export function throwsMessage(fn: () => unknown, message: string): void {
  let thrown: unknown = null;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  if (!(thrown instanceof Error) || thrown.message !== message) {
    throw new Error(`expected error "${message}", got ${thrown instanceof Error ? `"${thrown.message}"` : String(thrown)}`);
  }
}

/** A small seeded PRNG (mulberry32): same seed, same sequence. Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` incompressible bytes from `seed`. */
export function noise(n: number, seed: number): Uint8Array {
  const next = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
}
