// Small shared helpers every layer may use (the bottom of the import graph).
export { assert, unreachable, AssertionError } from './assert.ts';
export { EtcdError, Errors, GrpcCode, invalidArgument, checkedInt64 } from './errors.ts';
export type { GrpcCodeValue } from './errors.ts';
