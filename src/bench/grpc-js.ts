// The grpc-js client connection (`--transport grpc-js`): one channel per connection, its own
// HTTP/2 session (never shared through grpc-js's global subchannel pool), raw protobuf bytes in
// and out. Loaded only when asked for, so the default h2 client does not pay for grpc-js.
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import type { DuplexStream, RpcConnection } from './rpc-error.ts';
import { RpcError } from './rpc-error.ts';

const identity = (bytes: Buffer): Buffer => bytes;

function toRpcError(error: ServiceError): RpcError {
  return new RpcError(error.code ?? status.UNKNOWN, error.details ?? error.message);
}

/** A connection through grpc-js (`--transport grpc-js`). */
export class GrpcJsConnection implements RpcConnection {
  private readonly client: Client;

  constructor(readonly endpoint: string) {
    this.client = new Client(endpoint, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      // Benchmarks stress the server; grpc-js retries would hide failures and cost client CPU.
      'grpc.enable_retries': 0,
    });
  }

  waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (error) =>
        error ? reject(new Error(`${this.endpoint}: not connected within ${timeoutMs} ms (${error.message})`)) : resolve(),
      );
    });
  }

  /** One unary call on already-encoded bytes; resolves to the encoded response. */
  unary(path: string, request: Buffer, timeoutMs: number | null): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const callback = (error: ServiceError | null, response?: Buffer) => {
        if (error) reject(toRpcError(error));
        else resolve(response ?? Buffer.alloc(0));
      };
      if (timeoutMs === null) {
        this.client.makeUnaryRequest(path, identity, identity, request, callback);
      } else {
        this.client.makeUnaryRequest(path, identity, identity, request, { deadline: Date.now() + timeoutMs }, callback);
      }
    });
  }

  bidi(path: string): DuplexStream {
    return this.client.makeBidiStreamRequest(path, identity, identity, new Metadata());
  }

  close(): void {
    this.client.close();
  }
}
