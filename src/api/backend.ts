// The contract between the client-facing API and the node that serves it: the API decodes and
// validates etcd requests into mvcc-shaped objects and hands them here (the server layer implements it).
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from '../mvcc/index.ts';

/** The cluster-level fields of etcd's ResponseHeader; `revision` comes from each response. */
export interface HeaderInfo {
  /** uint64 as a decimal string: cluster and member IDs use all 64 bits, beyond a safe number. */
  clusterId: string;
  /** uint64 as a decimal string. */
  memberId: string;
  raftTerm: number;
}

/**
 * What the KV service needs from the node. Requests reaching it are already validated as etcd's
 * v3rpc does (non-empty keys, txn op budget, no duplicate writes in a txn, proposal size).
 * Throw an `EtcdError` for failures a client can act on; anything else becomes INTERNAL.
 */
export interface KvBackend {
  range(req: RangeRequest): Promise<RangeResponse>;
  put(req: PutRequest): Promise<PutResponse>;
  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(req: TxnRequest): Promise<TxnResponse>;
  compact(req: CompactionRequest): Promise<CompactionResponse>;
  /** Called once per response to fill cluster_id, member_id and raft_term. */
  header(): HeaderInfo;
}
