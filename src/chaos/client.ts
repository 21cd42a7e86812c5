// A deliberately plain etcd v3 client for fault tests: raw grpc-js calls on one endpoint, no
// retries, no failover, no circuit breaker, a deadline on every call. A library that retries a
// write whose first attempt timed out could apply it twice and hide exactly what we look for.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { assert } from '../util/index.ts';

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));
const PROTO_FILES = ['etcd/api/etcdserverpb/rpc.proto', 'etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto'];

/** Snake-case fields as in the protos, int64s as decimal strings (narrowed to numbers below). */
const definition = protoLoader.loadSync(PROTO_FILES, {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});

/** `service` is a full name for other packages (`v3lockpb.Lock`), else an etcdserverpb service. */
function method(service: string, name: string): grpc.MethodDefinition<object, object> {
  const svc = definition[service.includes('.') ? service : `etcdserverpb.${service}`];
  assert(svc !== undefined && !('format' in svc), `no service ${service}`);
  const def = (svc as grpc.ServiceDefinition)[name];
  assert(def !== undefined, `no method ${service}.${name}`);
  return def as grpc.MethodDefinition<object, object>;
}

/** What a failed call means for the history: `fail` = it certainly had no effect. */
export type Outcome = 'fail' | 'unknown';

export class CallError extends Error {
  override name = 'CallError';
  constructor(
    readonly code: number,
    readonly details: string,
    readonly outcome: Outcome,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
  }
}

/**
 * Errors that prove the request never took effect. Everything else is `unknown`: a server-side
 * timeout, a lost connection or a deadline may come after the request was applied.
 */
const DEFINITE_CODES = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNIMPLEMENTED,
  grpc.status.UNAUTHENTICATED,
]);

export function toCallError(error: unknown): CallError {
  if (error instanceof CallError) return error;
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number' ? error.code : grpc.status.UNKNOWN;
  const details =
    typeof error === 'object' && error !== null && 'details' in error && typeof error.details === 'string'
      ? error.details
      : String(error instanceof Error ? error.message : error);
  // grpc-js: the channel had no connection, so nothing was sent.
  const neverSent = code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test(details);
  return new CallError(code, details, DEFINITE_CODES.has(code) || neverSent ? 'fail' : 'unknown');
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface RangeResult {
  revision: number;
  memberId: string;
  kvs: KeyValue[];
}

export type Compare =
  | { key: string; target: 'VALUE'; result: 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS'; value: string }
  | { key: string; target: 'MOD' | 'CREATE' | 'VERSION'; result: 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS'; value: number };

export type TxnOp =
  | { put: { key: string; value: string } }
  | { range: { key: string; rangeEnd?: string } }
  | { deleteRange: { key: string; rangeEnd?: string } };

export interface TxnResult {
  revision: number;
  succeeded: boolean;
  /** Range results of the branch taken, in op order (non-range ops give null). */
  ranges: (KeyValue[] | null)[];
}

export interface StatusInfo {
  memberId: string;
  leader: string;
  raftTerm: number;
  revision: number;
}

export interface MemberInfo {
  /** Member ID, decimal. */
  id: string;
  name: string;
  peerUrls: string[];
  isLearner: boolean;
}

export interface WatchEventRecord {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
}

/** One watch stream: `onEvents` per response with events; `onEnd` once, when it breaks or is cancelled. */
export interface WatchStream {
  cancel(): void;
}

export interface WatchHandlers {
  onCreated(revision: number): void;
  onEvents(events: WatchEventRecord[], revision: number): void;
  onEnd(reason: string): void;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // A restarted node should be reachable again within a second, not grpc's 1-120 s backoff.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.enable_retries': 0,
  'grpc.max_receive_message_length': -1,
};

export class EtcdClient {
  private readonly client: grpc.Client;

  constructor(
    readonly endpoint: string,
    readonly timeoutMs = 3_000,
  ) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  close(): void {
    this.client.close();
  }

  private unary(service: string, name: string, request: object, timeoutMs = this.timeoutMs): Promise<Record<string, unknown>> {
    const def = method(service, name);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        request,
        { deadline: Date.now() + timeoutMs },
        (error, response) => (error ? reject(toCallError(error)) : resolve(record(response))),
      );
    });
  }

  async range(key: string, options: { rangeEnd?: string; serializable?: boolean; revision?: number; timeoutMs?: number } = {}): Promise<RangeResult> {
    const response = await this.unary(
      'KV',
      'Range',
      {
        key: Buffer.from(key),
        range_end: options.rangeEnd === undefined ? undefined : Buffer.from(options.rangeEnd),
        serializable: options.serializable ?? false,
        revision: options.revision ?? 0,
      },
      options.timeoutMs,
    );
    const header = record(response.header);
    return { revision: int(header.revision), memberId: String(header.member_id), kvs: list(response.kvs).map(keyValue) };
  }

  /** Resolves to the revision of the put. */
  async put(key: string, value: string): Promise<number> {
    const response = await this.unary('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
    return int(record(response.header).revision);
  }

  async txn(compare: Compare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    const response = await this.unary('KV', 'Txn', {
      compare: compare.map(wireCompare),
      success: success.map(wireOp),
      failure: failure.map(wireOp),
    });
    const ranges = list(response.responses).map((r) => {
      const op = record(r);
      return op.response_range ? list(record(op.response_range).kvs).map(keyValue) : null;
    });
    return { revision: int(record(response.header).revision), succeeded: response.succeeded === true, ranges };
  }

  async status(timeoutMs = 1_000): Promise<StatusInfo> {
    const response = await this.unary('Maintenance', 'Status', {}, timeoutMs);
    const header = record(response.header);
    return { memberId: String(header.member_id), leader: String(response.leader), raftTerm: int(response.raftTerm ?? response.raft_term), revision: int(header.revision) };
  }

  async memberList(timeoutMs = 1_000): Promise<MemberInfo[]> {
    const response = await this.unary('Cluster', 'MemberList', {}, timeoutMs);
    return list(response.members).map(memberInfo);
  }

  /** Cluster.MemberAdd of a voter (or a learner); resolves to the new member. */
  async memberAdd(peerUrls: string[], timeoutMs = this.timeoutMs, isLearner = false): Promise<MemberInfo> {
    const response = await this.unary('Cluster', 'MemberAdd', { peerURLs: peerUrls, isLearner }, timeoutMs);
    return memberInfo(response.member);
  }

  async memberRemove(id: string, timeoutMs = this.timeoutMs): Promise<void> {
    await this.unary('Cluster', 'MemberRemove', { ID: id }, timeoutMs);
  }

  /** Maintenance.MoveLeader: must be sent to the leader; resolves once `targetId` leads. */
  async moveLeader(targetId: string, timeoutMs = this.timeoutMs): Promise<void> {
    await this.unary('Maintenance', 'MoveLeader', { targetID: targetId }, timeoutMs);
  }

  /** A lease with `ttlSeconds`; resolves to its ID. */
  async leaseGrant(ttlSeconds: number): Promise<number> {
    const response = await this.unary('Lease', 'LeaseGrant', { TTL: ttlSeconds, ID: 0 });
    return int(response.ID);
  }

  async leaseRevoke(id: number): Promise<void> {
    await this.unary('Lease', 'LeaseRevoke', { ID: id });
  }

  /** v3lockpb.Lock: waits (up to `timeoutMs`) until the lock `name` is ours; resolves to our lock key. */
  async lock(name: string, lease: number, timeoutMs: number): Promise<string> {
    const response = await this.unary('v3lockpb.Lock', 'Lock', { name: Buffer.from(name), lease }, timeoutMs);
    return text(response.key);
  }

  async unlock(key: string): Promise<void> {
    await this.unary('v3lockpb.Lock', 'Unlock', { key: Buffer.from(key) });
  }

  /** Opens a watch on [key, rangeEnd) from `startRevision` (0 = from now). */
  watch(key: string, rangeEnd: string, startRevision: number, handlers: WatchHandlers): WatchStream {
    const def = method('Watch', 'Watch');
    const call = this.client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      handlers.onEnd(reason);
      call.cancel();
    };
    call.on('data', (message: unknown) => {
      const response = record(message);
      const revision = int(record(response.header).revision);
      if (response.created === true) handlers.onCreated(revision);
      const events = list(response.events).map((e) => {
        const event = record(e);
        return { type: event.type === 'DELETE' ? ('DELETE' as const) : ('PUT' as const), kv: keyValue(event.kv) };
      });
      if (events.length > 0) handlers.onEvents(events, revision);
      if (response.canceled === true) end(`canceled: ${String(response.cancel_reason)} (compact revision ${String(response.compact_revision)})`);
    });
    call.on('error', (error: unknown) => end(toCallError(error).message));
    call.on('end', () => end('stream ended'));
    call.write({
      create_request: { key: Buffer.from(key), range_end: Buffer.from(rangeEnd), start_revision: startRevision },
    });
    return { cancel: () => end('cancelled by the client') };
  }
}

function wireCompare(c: Compare): object {
  const base = { key: Buffer.from(c.key), result: c.result, target: c.target };
  switch (c.target) {
    case 'VALUE':
      return { ...base, value: Buffer.from(c.value) };
    case 'MOD':
      return { ...base, mod_revision: c.value };
    case 'CREATE':
      return { ...base, create_revision: c.value };
    case 'VERSION':
      return { ...base, version: c.value };
  }
}

function wireOp(op: TxnOp): object {
  if ('put' in op) return { request_put: { key: Buffer.from(op.put.key), value: Buffer.from(op.put.value) } };
  if ('range' in op) {
    return { request_range: { key: Buffer.from(op.range.key), range_end: op.range.rangeEnd === undefined ? undefined : Buffer.from(op.range.rangeEnd) } };
  }
  return { request_delete_range: { key: Buffer.from(op.deleteRange.key), range_end: op.deleteRange.rangeEnd === undefined ? undefined : Buffer.from(op.deleteRange.rangeEnd) } };
}

// ---- narrowing decoded protobuf objects ----

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function int(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : typeof value === 'number' ? value : 0;
  assert(Number.isSafeInteger(n), () => `int64 out of range: ${String(value)}`);
  return n;
}

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : '';
}

function memberInfo(value: unknown): MemberInfo {
  const member = record(value);
  return { id: String(member.ID), name: String(member.name), peerUrls: list(member.peerURLs).map(String), isLearner: member.isLearner === true };
}

function keyValue(value: unknown): KeyValue {
  const kv = record(value);
  return {
    key: text(kv.key),
    value: text(kv.value),
    createRevision: int(kv.create_revision),
    modRevision: int(kv.mod_revision),
    version: int(kv.version),
  };
}

/** etcd's prefix range end: the key with its last byte incremented. */
export function prefixEnd(prefix: string): string {
  assert(prefix.length > 0, 'empty prefix');
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
