// The etcd KV service on top of the replicas: every request finds its Raft group in the range
// table; writes are proposed, linearizable reads wait for a ReadIndex, serializable reads are local.
import { rangeNeeds, txnNeeds } from '../api/index.ts';
import type { AuthStamp, KvBackend } from '../api/index.ts';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  TxnRequest,
  TxnResponse,
} from '../mvcc/index.ts';
import { invalidArgument } from '../util/index.ts';
import { recheckAuth } from './auth-apply.ts';
import { isReadOnlyTxn, stamped } from './commands.ts';
import type { TesseraNode } from './node.ts';

function opSpan(op: RequestOp): [Uint8Array, Uint8Array][] {
  switch (op.type) {
    case 'range':
      return [[op.range.key, op.range.rangeEnd]];
    case 'put':
      return [[op.put.key, new Uint8Array(0)]];
    case 'deleteRange':
      return [[op.deleteRange.key, op.deleteRange.rangeEnd]];
    case 'txn':
      return txnSpans(op.txn);
  }
}

function txnSpans(txn: TxnRequest): [Uint8Array, Uint8Array][] {
  return [
    ...txn.compare.map((c): [Uint8Array, Uint8Array] => [c.key, c.rangeEnd]),
    ...txn.success.flatMap(opSpan),
    ...txn.failure.flatMap(opSpan),
  ];
}

export class KvService implements KvBackend {
  constructor(private readonly node: TesseraNode) {}

  private replicaForSpan(key: Uint8Array, rangeEnd: Uint8Array) {
    return this.node.replicaFor(this.node.rangeTable.groupForSpan(key, rangeEnd));
  }

  async range(req: RangeRequest, stamp?: AuthStamp): Promise<RangeResponse> {
    const replica = this.replicaForSpan(req.key, req.rangeEnd);
    if (req.serializable) return replica.store.range(req);
    const response = replica.linearizableRead(() => {
      // Served once this node applied the leader's commit index: check again if the auth store moved since.
      if (stamp !== undefined) recheckAuth(replica.auth, stamp, () => rangeNeeds(req));
      return replica.store.range(req);
    });
    this.node.schedule();
    return response;
  }

  async put(req: PutRequest, stamp?: AuthStamp): Promise<PutResponse> {
    const replica = this.replicaForSpan(req.key, new Uint8Array(0));
    const response = replica.propose(stamped({ op: 'put', req }, stamp));
    this.node.schedule();
    return (await response) as PutResponse;
  }

  async deleteRange(req: DeleteRangeRequest, stamp?: AuthStamp): Promise<DeleteRangeResponse> {
    const replica = this.replicaForSpan(req.key, req.rangeEnd);
    const response = replica.propose(stamped({ op: 'deleteRange', req }, stamp));
    this.node.schedule();
    return (await response) as DeleteRangeResponse;
  }

  async txn(req: TxnRequest, stamp?: AuthStamp): Promise<TxnResponse> {
    const groups = new Set(txnSpans(req).map(([key, end]) => this.node.rangeTable.groupForSpan(key, end)));
    if (groups.size > 1) throw invalidArgument('etcdserver: a txn across several ranges is not supported yet');
    const replica = this.node.replicaFor(groups.size === 1 ? [...groups][0] : this.node.rangeTable.all()[0].groupId);
    const response = isReadOnlyTxn(req)
      ? replica.linearizableRead(() => {
          if (stamp !== undefined) recheckAuth(replica.auth, stamp, () => txnNeeds(req));
          return replica.store.txn(req).response;
        })
      : (replica.propose(stamped({ op: 'txn', req }, stamp)) as Promise<TxnResponse>);
    this.node.schedule();
    return response;
  }

  async compact(req: CompactionRequest, stamp?: AuthStamp): Promise<CompactionResponse> {
    // Every group shares the revision sequence while there is one range; with sharding the
    // compaction goes to each group at the cluster-wide revision.
    const responses = this.node.rangeTable
      .all()
      .map((range) => this.node.replicaFor(range.groupId).propose(stamped({ op: 'compact', req }, stamp)));
    this.node.schedule();
    const [first] = (await Promise.all(responses)) as CompactionResponse[];
    return first;
  }

  header(): { clusterId: string; memberId: string; raftTerm: number } {
    const replica = this.node.replicas.values().next().value;
    return { clusterId: String(this.node.meta.clusterId), memberId: String(this.node.id), raftTerm: replica?.term ?? 0 };
  }
}
