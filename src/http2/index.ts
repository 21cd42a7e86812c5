// HTTP/2 for gRPC, without node:http2: frames, HPACK, and connections (server and client side).
export { H2Connection, H2Stream, H2ProtocolError, HIGH_WATER_BYTES, DEFAULT_MAX_CONCURRENT_STREAMS } from './connection.ts';
export type { H2ConnectionOptions, HeaderMap } from './connection.ts';
export { encodeHeaderBlock, HpackDecoder, HpackError, HeaderListTooLarge, HPACK_STATIC_TABLE } from './hpack.ts';
export type { HeaderFields } from './hpack.ts';
export { ErrorCode as H2ErrorCode, CLIENT_PREFACE } from './frames.ts';
export { Reassembler } from './reassembler.ts';
export type { UnitLength } from './reassembler.ts';
