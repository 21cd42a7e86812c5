// grpc-js handler adapters shared by every service: an async function becomes a unary handler
// whose every failure, thrown or rejected, is turned into a status by toStatus.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Received } from './protos.ts';
import { toStatus } from './status.ts';
import { EtcdError, GrpcCode } from '../util/index.ts';

/**
 * A grpc-js unary handler around an async function. Nothing escapes to crash the process. The
 * request is the decoder's `Received<wire object>` (protos.ts), whose shape the proto guarantees.
 */
export function unaryHandler<Wire, Response>(
  method: string,
  logger: Logger,
  run: (request: Received<Wire>) => Promise<Response>,
): grpc.handleUnaryCall<Received<unknown>, Response> {
  return (call, callback) => {
    const request = call.request as Received<Wire>;
    let pending: Promise<Response>;
    try {
      pending = run(request);
    } catch (error) {
      callback(toStatus(error, method, logger));
      return;
    }
    pending.then(
      (response) => callback(null, response),
      (error: unknown) => callback(toStatus(error, method, logger)),
    );
  };
}

/**
 * A unary handler for calls that may wait a long time (Lock, Campaign): `run` gets a signal that
 * aborts when the client cancels or its deadline passes, so the backend can withdraw its waiter.
 */
export function waitingUnaryHandler<Wire, Response>(
  method: string,
  logger: Logger,
  run: (request: Received<Wire>, signal: AbortSignal) => Promise<Response>,
): grpc.handleUnaryCall<Received<unknown>, Response> {
  return (call, callback) => {
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort(new EtcdError(GrpcCode.CANCELLED, 'context canceled')));
    const handler = unaryHandler<Wire, Response>(method, logger, (request) =>
      run(request, controller.signal),
    );
    handler(call, (error, response) => {
      // A cancelled call's answer goes nowhere; grpc-js drops it.
      if (!controller.signal.aborted) callback(error, response);
    });
  };
}

/** The status a long-lived stream ends with when the server stops (clients retry elsewhere). */
export const SERVER_STOPPED = { code: GrpcCode.UNAVAILABLE, details: 'etcdserver: server stopped' };

/**
 * Ends a streaming call with a status. grpc-js turns an 'error' event on a server stream into the
 * call's final status; the stream must not be written to afterwards.
 */
export function endWithStatus(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  status: Partial<grpc.StatusObject>,
): void {
  if (call.destroyed || call.writableEnded) return;
  call.emit('error', status);
}

/**
 * The streams that live until the client leaves (Watch, LeaseKeepAlive, Observe, Snapshot): the
 * server ends them at stop(), so shutdown does not wait out its grace period on them.
 */
export class OpenStreams {
  private readonly closers = new Set<() => void>();

  /** Registers `close`; returns the function that unregisters it (call it when the stream ends). */
  add(close: () => void): () => void {
    this.closers.add(close);
    return () => void this.closers.delete(close);
  }

  get size(): number {
    return this.closers.size;
  }

  closeAll(): void {
    const closers = [...this.closers];
    this.closers.clear();
    for (const close of closers) close();
  }
}

/** Resolves once a server stream can take more writes, or has ended (then writes are moot). */
export function drained(call: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ['drain', 'close', 'error', 'cancelled']) call.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'close', 'error', 'cancelled']) call.on(event, done);
  });
}
