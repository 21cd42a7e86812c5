// A failed call, whichever client made it: the gRPC status code and the server's message.

/** gRPC status names by code (grpc/doc/statuscodes.md). */
const STATUS_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

export const GRPC_UNIMPLEMENTED = 12;

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `code ${code}`;
}

export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${statusName(code)}: ${details}`);
  }
}

/** The duplex stream surface the workloads use (grpc-js's ClientDuplexStream and H2BidiStream). */
export interface DuplexStream {
  on(event: 'data', listener: (message: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error & { code?: number; details?: string }) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  write(message: Buffer): boolean;
  end(): void;
  cancel(): void;
}

/** One client connection to one endpoint. */
export interface RpcConnection {
  readonly endpoint: string;
  waitReady(timeoutMs: number): Promise<void>;
  /** One unary call on encoded bytes; rejects with RpcError. */
  unary(path: string, request: Buffer, timeoutMs: number | null): Promise<Buffer>;
  bidi(path: string): DuplexStream;
  close(): void;
}
