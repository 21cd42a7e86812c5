// KvBackends for the API tests: the real MvccStore behind an async facade (what the server layer
// does, minus Raft), with hooks to inspect requests and inject failures; and a canned backend
// for numbers no store reaches in a test (revisions near 2^53).
import type { HeaderInfo, KvBackend } from '../../src/api/index.ts';
import { MvccStore, rangeRequest as mvccRangeRequest } from '../../src/mvcc/index.ts';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from '../../src/mvcc/index.ts';

export const TEST_HEADER: HeaderInfo = { clusterId: '14841639068965178418', memberId: '10276657743932975437', raftTerm: 2 };

export function rangeRequest(key: string, overrides: Partial<RangeRequest> = {}): RangeRequest {
  return mvccRangeRequest(Buffer.from(key), overrides);
}

export class StoreBackend implements KvBackend {
  readonly store = new MvccStore();
  headerInfo: HeaderInfo = TEST_HEADER;
  /** Requests that reached the backend, newest last. */
  readonly received: { method: string; req: unknown }[] = [];
  private failure: unknown = null;

  /** The next call throws `error` instead of reaching the store. */
  failNext(error: unknown): void {
    this.failure = error;
  }

  /** The value stored under `key`, or null. */
  value(key: string): string | null {
    const [kv] = this.store.range(rangeRequest(key)).kvs;
    return kv === undefined ? null : Buffer.from(kv.value).toString();
  }

  header(): HeaderInfo {
    return this.headerInfo;
  }

  async range(req: RangeRequest): Promise<RangeResponse> {
    this.enter('range', req);
    return this.store.range(req);
  }

  async put(req: PutRequest): Promise<PutResponse> {
    this.enter('put', req);
    return this.store.put(req).response;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    this.enter('deleteRange', req);
    return this.store.deleteRange(req).response;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    this.enter('txn', req);
    return this.store.txn(req).response;
  }

  async compact(req: CompactionRequest): Promise<CompactionResponse> {
    this.enter('compact', req);
    return this.store.compact(req).response;
  }

  private enter(method: string, req: unknown): void {
    this.received.push({ method, req });
    if (this.failure === null) return;
    const error = this.failure;
    this.failure = null;
    throw error;
  }
}

/** Answers every request with the same key-value at a fixed revision, whatever was asked. */
export class CannedBackend implements KvBackend {
  constructor(
    readonly headerInfo: HeaderInfo,
    readonly revision: number,
    readonly kv: KeyValue,
  ) {}

  header(): HeaderInfo {
    return this.headerInfo;
  }

  async range(): Promise<RangeResponse> {
    return { header: { revision: this.revision }, kvs: [this.kv], more: false, count: 1 };
  }

  async put(): Promise<PutResponse> {
    return { header: { revision: this.revision }, prevKv: this.kv };
  }

  async deleteRange(): Promise<DeleteRangeResponse> {
    return { header: { revision: this.revision }, deleted: 1, prevKvs: [this.kv] };
  }

  async txn(): Promise<TxnResponse> {
    const range = await this.range();
    return { header: { revision: this.revision }, succeeded: true, responses: [{ type: 'range', range }] };
  }

  async compact(): Promise<CompactionResponse> {
    return { header: { revision: this.revision } };
  }
}
