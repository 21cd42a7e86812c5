// The etcdserverpb.KV service: decode, check as etcd's v3rpc does, call the backend, encode with
// the cluster header. RangeStream is left to grpc-js's default answer, UNIMPLEMENTED.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { deleteRangeNeeds, putNeeds, rangeNeeds, txnNeeds } from './auth-gate.ts';
import type { AuthGate } from './auth-gate.ts';
import type { KvBackend } from './backend.ts';
import {
  decodeCompactionRequest,
  decodeDeleteRangeRequest,
  decodePutRequest,
  decodeRangeRequest,
  decodeTxnRequest,
  encodeCompactionResponse,
  encodeDeleteRangeResponse,
  encodeHeader,
  encodePutResponse,
  encodeRangeResponse,
  encodeTxnResponse,
} from './codec.ts';
import { unaryHandler } from './handlers.ts';
import type { Received } from './protos.ts';
import {
  checkDeleteRangeRequest,
  checkProposalSize,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  isReadOnlyTxn,
  requestIdVarintBytes,
} from './validate.ts';
import type {
  WireCompactionRequest,
  WireDeleteRangeRequest,
  WirePutRequest,
  WireRangeRequest,
  WireResponseHeader,
  WireTxnRequest,
} from './wire.ts';

export interface KvServiceOptions {
  backend: KvBackend;
  /** etcd's --max-request-bytes: the largest write proposal. */
  maxRequestBytes: number;
  /** etcd's --max-txn-ops: the most ops in each of a txn's compare/success/failure lists. */
  maxTxnOps: number;
  logger: Logger;
  /** Authorization of each call once auth is enabled (auth-gate.ts); none without it. */
  gate?: AuthGate;
}

/** Handlers for `server.addService(serverServiceDefinition('etcdserverpb.KV'), ...)`. */
export function kvServiceHandlers(options: KvServiceOptions): grpc.UntypedServiceImplementation {
  const { backend, maxRequestBytes, maxTxnOps, logger, gate } = options;
  const header = (revision: number): WireResponseHeader => encodeHeader(revision, backend.header());
  let sizedMemberId = '';
  let requestIdBytes = 0;
  const checkSize = (bytes: number) => {
    const { memberId } = backend.header();
    if (memberId !== sizedMemberId) {
      requestIdBytes = requestIdVarintBytes(memberId);
      sizedMemberId = memberId;
    }
    checkProposalSize(bytes, maxRequestBytes, requestIdBytes);
  };
  const unary = <Wire, Response>(method: string, run: (request: Received<Wire>) => Promise<Response>) =>
    unaryHandler(method, logger, run);

  return {
    Range: unary('Range', async (request: Received<WireRangeRequest>) => {
      const req = decodeRangeRequest(request.message);
      checkRangeRequest(req);
      const stamp = gate?.active === true ? gate.check(request, rangeNeeds(req), 'Range') : undefined;
      const response = await backend.range(req, stamp);
      return encodeRangeResponse(response, header(response.header.revision));
    }),
    Put: unary('Put', async (request: Received<WirePutRequest>) => {
      const req = decodePutRequest(request.message);
      checkPutRequest(req);
      checkSize(request.bytes);
      const stamp = gate?.active === true ? gate.check(request, putNeeds(req), 'Put') : undefined;
      const response = await backend.put(req, stamp);
      return encodePutResponse(response, header(response.header.revision));
    }),
    DeleteRange: unary('DeleteRange', async (request: Received<WireDeleteRangeRequest>) => {
      const req = decodeDeleteRangeRequest(request.message);
      checkDeleteRangeRequest(req);
      checkSize(request.bytes);
      const stamp = gate?.active === true ? gate.check(request, deleteRangeNeeds(req), 'DeleteRange') : undefined;
      const response = await backend.deleteRange(req, stamp);
      return encodeDeleteRangeResponse(response, header(response.header.revision));
    }),
    Txn: unary('Txn', async (request: Received<WireTxnRequest>) => {
      const req = decodeTxnRequest(request.message, maxTxnOps);
      checkTxnRequest(req);
      // Like etcd, a read-only txn is served without a proposal, so the proposal limit does not apply.
      if (!isReadOnlyTxn(req)) checkSize(request.bytes);
      const stamp = gate?.active === true ? gate.check(request, txnNeeds(req), 'Txn') : undefined;
      const response = await backend.txn(req, stamp);
      return encodeTxnResponse(response, header(response.header.revision));
    }),
    Compact: unary('Compact', async (request: Received<WireCompactionRequest>) => {
      const req = decodeCompactionRequest(request.message);
      checkSize(request.bytes);
      const stamp = gate?.active === true ? gate.check(request, [{ kind: 'root' }], 'Compact') : undefined;
      const response = await backend.compact(req, stamp);
      return encodeCompactionResponse(response, header(response.header.revision));
    }),
  };
}
