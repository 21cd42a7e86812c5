// HTTP/2 for gRPC, without node:http2: frames, HPACK, and connections (server and client side).
export { H2Connection, H2Stream } from './connection.ts';
export type { H2ConnectionOptions, HeaderMap } from './connection.ts';
export { encodeHeaderBlock, HpackDecoder, HpackError, HeaderListTooLarge, HPACK_STATIC_TABLE } from './hpack.ts';
export type { HeaderFields } from './hpack.ts';
export { ErrorCode as H2ErrorCode } from './frames.ts';
export { Reassembler } from './reassembler.ts';
export {
  decodeGrpcMessage,
  EncodedMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  GrpcWireError,
  isGrpcContentType,
  MESSAGE_PREFIX_BYTES,
  MessageDeframer,
  parseGrpcTimeout,
} from './grpc.ts';
