// The MVCC state machine: etcd's revisioned key-value model, leases and watches, in memory and
// deterministic. The only entry point of src/mvcc/ for other layers.
export * from './types.ts';
export { MvccStore } from './store.ts';
export { WatchCompactedError } from './watch.ts';
export { DEFAULT_MVCC_LIMITS } from './limits.ts';
export type { MvccLimits } from './limits.ts';
export { MIN_SNAPSHOT_CHUNK_BYTES, SnapshotInvalidatedError } from './snapshot.ts';
