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

// The batch format since session 3: a byte msgpack never uses (0xc1), so batches in older logs
// (one msgpack map) still decode; then the format, origin, incarnation and count as varints; then
// each command: its id, a tag, and for an unstamped put (most of a write load) its fields in
// binary, for anything else its msgpack. Writing and reading puts this way costs a fraction of
// msgpack's generic object walk (which writes every field name of every command): each batch is
// encoded once and decoded on every replica.
const BINARY_BATCH = 0xc1;
const BATCH_FORMAT = 1;
const TAG_MSGPACK = 0;
const TAG_PUT = 1;
const PUT_PREV_KV = 1;
const PUT_IGNORE_VALUE = 2;
const PUT_IGNORE_LEASE = 4;
/** Most bytes a varint of a safe integer takes. */
const MAX_VARINT_BYTES = 8;

/** A put with nothing but its request (no auth stamp): the binary fast path. */
function plainPut(cmd: Command): PutRequest | null {
  return cmd.op === 'put' && cmd.stamp === undefined ? cmd.req : null;
}

export function encodeBatch(batch: CommandBatch): Uint8Array {
  assert(batch.commands.length > 0, 'empty command batch');
  const generic = new Map<number, Uint8Array>();
  let bytes = 2 + 3 * MAX_VARINT_BYTES;
  for (let i = 0; i < batch.commands.length; i++) {
    const { cmd } = batch.commands[i];
    const put = plainPut(cmd);
    bytes += MAX_VARINT_BYTES + 1;
    if (put !== null) bytes += 2 * MAX_VARINT_BYTES + put.key.length + put.value.length + 8 + 1;
    else {
      const packed = packr.pack(cmd);
      generic.set(i, new Uint8Array(packed)); // packr reuses its buffer: copy
      bytes += MAX_VARINT_BYTES + packed.length;
    }
  }
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  const varint = (value: number) => {
    assert(Number.isSafeInteger(value) && value >= 0, () => `varint of ${value}`);
    let n = value;
    while (n >= 0x80) {
      out[at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    out[at++] = n;
  };
  const blob = (b: Uint8Array) => {
    varint(b.length);
    out.set(b, at);
    at += b.length;
  };
  out[at++] = BINARY_BATCH;
  out[at++] = BATCH_FORMAT;
  varint(batch.origin);
  varint(batch.incarnation);
  varint(batch.commands.length);
  for (let i = 0; i < batch.commands.length; i++) {
    const { id, cmd } = batch.commands[i];
    varint(id);
    const put = plainPut(cmd);
    if (put === null) {
      out[at++] = TAG_MSGPACK;
      blob(generic.get(i) as Uint8Array);
      continue;
    }
    out[at++] = TAG_PUT;
    blob(put.key);
    blob(put.value);
    at = out.writeDoubleBE(put.lease, at); // any int64 the client sent, exactly as a JS number
    out[at++] = (put.prevKv ? PUT_PREV_KV : 0) | (put.ignoreValue ? PUT_IGNORE_VALUE : 0) | (put.ignoreLease ? PUT_IGNORE_LEASE : 0);
  }
  return new Uint8Array(out.buffer, out.byteOffset, at);
}

/** Decodes either format; put keys and values are views into `data` (the store copies what it keeps). */
export function decodeBatch(data: Uint8Array): CommandBatch {
  if (data[0] !== BINARY_BATCH) {
    const batch = packr.unpack(data) as CommandBatch;
    assert(typeof batch.origin === 'number' && Array.isArray(batch.commands), 'malformed command batch in the Raft log');
    return batch;
  }
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let at = 1;
  const need = (n: number) => assert(at + n <= data.length, 'truncated command batch in the Raft log');
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      need(1);
      const byte = data[at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    return assert(false, 'overlong varint in a command batch') as never;
  };
  const blob = (): Uint8Array => {
    const length = varint();
    need(length);
    const bytes = data.subarray(at, at + length);
    at += length;
    return bytes;
  };
  need(1);
  assert(data[at++] === BATCH_FORMAT, 'unknown command batch format in the Raft log');
  const origin = varint();
  const incarnation = varint();
  const count = varint();
  const commands: ProposedCommand[] = [];
  for (let i = 0; i < count; i++) {
    const id = varint();
    need(1);
    const tag = data[at++];
    if (tag === TAG_MSGPACK) {
      commands.push({ id, cmd: packr.unpack(blob()) as Command });
      continue;
    }
    assert(tag === TAG_PUT, () => `unknown command tag ${tag} in the Raft log`);
    const key = blob();
    const value = blob();
    need(9);
    const read = view.readDoubleBE(at);
    // An int32 (0: no lease) back as a small integer: a double read here makes every stored
    // version box its lease in a heap number of its own (V8 then keeps that field as doubles).
    const lease = read === (read | 0) ? read | 0 : read;
    const flags = data[at + 8];
    at += 9;
    const req: PutRequest = { key, value, lease, prevKv: (flags & PUT_PREV_KV) !== 0, ignoreValue: (flags & PUT_IGNORE_VALUE) !== 0, ignoreLease: (flags & PUT_IGNORE_LEASE) !== 0 };
    commands.push({ id, cmd: { op: 'put', req } });
  }
  assert(at === data.length, 'trailing bytes after a command batch in the Raft log');
  return { origin, incarnation, commands };
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
