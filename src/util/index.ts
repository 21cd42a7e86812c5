// Small shared helpers every layer may use (the bottom of the import graph).
export { assert, unreachable, AssertionError } from './assert.ts';
export { EtcdError, Errors, GrpcCode, invalidArgument, checkedInt64 } from './errors.ts';
export type { GrpcCodeValue } from './errors.ts';
export { ByteReader, MAX_UVARINT_BYTES, uvarintSize, writeUvarint } from './varint.ts';
export { ChurnMap } from './churn-map.ts';
export { setTraceSink, trace } from './trace.ts';
export type { TraceSink } from './trace.ts';
