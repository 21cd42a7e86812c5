// Turns whatever a request handler threw into the gRPC status the client sees: an EtcdError keeps
// its code and etcd's message (clients match on both); anything else is a bug, logged, sent as INTERNAL.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError, GrpcCode } from '../util/index.ts';

/** Shown to clients for failures that are Tessera's own bugs; the details go to the log only. */
export const INTERNAL_ERROR_MESSAGE = 'etcdserver: internal error';

export function toStatus(error: unknown, method: string, logger: Logger): Partial<grpc.StatusObject> {
  if (error instanceof EtcdError) {
    logger.debug({ method, code: error.code, message: error.message }, 'request refused');
    return { code: error.code, details: error.message };
  }
  logger.error({ method, err: error }, 'request failed with an unexpected error');
  return { code: GrpcCode.INTERNAL, details: INTERNAL_ERROR_MESSAGE };
}
