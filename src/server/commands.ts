// What goes into a Raft entry: a batch of client commands from one node, packed with msgpackr.
// One entry carries many commands (proposal batching); each command still gets its own revision.
import { Packr } from 'msgpackr';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest } from '../mvcc/index.ts';
import { assert } from '../util/index.ts';
import type { AuthStamp } from '../api/index.ts';
import type { AuthCommand } from './auth-store.ts';

/**
 * `stamp`: only on commands from calls authorized while auth was enabled (absent otherwise, so auth
 * off costs nothing): the user and auth revision they were checked at. The replica that applies
 * the command checks it again if the auth store changed since (auth-apply.ts).
 */
export type Command =
  | { op: 'put'; req: PutRequest; stamp?: AuthStamp }
  | { op: 'deleteRange'; req: DeleteRangeRequest; stamp?: AuthStamp }
  | { op: 'txn'; req: TxnRequest; stamp?: AuthStamp }
  | { op: 'compact'; req: CompactionRequest; stamp?: AuthStamp }
  | { op: 'leaseGrant'; id: number; ttlSeconds: number }
  /** `decidedAt`: the leader's applied index when it found the lease expired (absent for client revokes). */
  | { op: 'leaseRevoke'; id: number; decidedAt?: number; stamp?: AuthStamp }
  | { op: 'leaseKeepAlive'; id: number }
  | { op: 'memberAttrs'; id: number; attrs: { name?: string; clientUrls?: string[]; peerUrls?: string[] } }
  | { op: 'alarm'; action: 'get' | 'activate' | 'deactivate'; memberId: string; alarm: 'none' | 'nospace' | 'corrupt' }
  /** Users, roles and permissions; passwords arrive hashed (auth.ts hashes before proposing). */
  | { op: 'auth'; req: AuthCommand; stamp?: AuthStamp };

/** The command's auth stamp, if it has one. */
export function stampOf(cmd: Command): AuthStamp | undefined {
  return 'stamp' in cmd ? cmd.stamp : undefined;
}

/** `cmd` with `stamp` attached, or `cmd` itself when there is none (no field at all: auth off stays free). */
export function stamped<C extends Command>(cmd: C, stamp: AuthStamp | undefined): C {
  return stamp === undefined ? cmd : { ...cmd, stamp };
}

export interface ProposedCommand {
  /** Node-local sequence number; with `origin` it names the waiting client request. */
  id: number;
  cmd: Command;
}

export interface CommandBatch {
  origin: number;
  /**
   * The proposing process's incarnation: command ids restart at 1 in every process, so after a
   * restart the replayed log would otherwise answer new requests with old results.
   */
  incarnation: number;
  commands: ProposedCommand[];
}

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeBatch(batch: CommandBatch): Uint8Array {
  assert(batch.commands.length > 0, 'empty command batch');
  return packr.pack(batch);
}

export function decodeBatch(data: Uint8Array): CommandBatch {
  const batch = packr.unpack(data) as CommandBatch;
  assert(typeof batch.origin === 'number' && Array.isArray(batch.commands), 'malformed command batch in the Raft log');
  return batch;
}

const opOverheadBytes = 48;

function opBytes(op: RequestOp): number {
  switch (op.type) {
    case 'range':
      return opOverheadBytes + op.range.key.length + op.range.rangeEnd.length;
    case 'put':
      return opOverheadBytes + op.put.key.length + op.put.value.length;
    case 'deleteRange':
      return opOverheadBytes + op.deleteRange.key.length + op.deleteRange.rangeEnd.length;
    case 'txn':
      return txnBytes(op.txn);
  }
}

function txnBytes(txn: TxnRequest): number {
  let total = opOverheadBytes;
  for (const c of txn.compare) total += opOverheadBytes + c.key.length + c.rangeEnd.length + c.value.length;
  for (const op of txn.success) total += opBytes(op);
  for (const op of txn.failure) total += opBytes(op);
  return total;
}

/** A cheap upper estimate of a command's encoded size, to cut entries at maxEntryBytes without encoding twice. */
export function estimateBytes(cmd: Command): number {
  const stamp = stampOf(cmd);
  return stamp === undefined ? commandBytes(cmd) : commandBytes(cmd) + opOverheadBytes + stamp.user.length * 3;
}

function commandBytes(cmd: Command): number {
  switch (cmd.op) {
    case 'put':
      return opOverheadBytes + cmd.req.key.length + cmd.req.value.length;
    case 'deleteRange':
      return opOverheadBytes + cmd.req.key.length + cmd.req.rangeEnd.length;
    case 'txn':
      return txnBytes(cmd.req);
    case 'compact':
    case 'leaseGrant':
    case 'leaseRevoke':
    case 'leaseKeepAlive':
    case 'alarm':
    case 'memberAttrs':
      return opOverheadBytes;
    case 'auth':
      return authBytes(cmd.req);
  }
}

function authBytes(req: AuthCommand): number {
  let total = opOverheadBytes * 2;
  for (const value of Object.values(req)) {
    if (typeof value === 'string') total += value.length * 3;
    else if (value instanceof Uint8Array) total += value.length;
    else if (typeof value === 'object' && value !== null) {
      // A permission: its key and range end are the bulk of it.
      const perm = value as { key?: Uint8Array; rangeEnd?: Uint8Array };
      total += opOverheadBytes + (perm.key?.length ?? 0) + (perm.rangeEnd?.length ?? 0);
    }
  }
  return total;
}

/** True when the Txn only reads: it can be served by a linearizable read instead of a proposal. */
export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const readOnly = (op: RequestOp): boolean =>
    op.type === 'range' || (op.type === 'txn' && isReadOnlyTxn(op.txn));
  return txn.success.every(readOnly) && txn.failure.every(readOnly);
}
