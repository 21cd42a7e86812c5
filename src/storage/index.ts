// Durable per-node storage: every Raft group's log, hard state and snapshots, plus node metadata,
// in one LMDB environment behind a write-ahead log, with group commit (one log write per commit()).
export { NodeStorage } from './node-storage.ts';
export type { NodeStorageOptions, StorageStats } from './node-storage.ts';
export { GroupStorage } from './group-storage.ts';
export { StorageFaults, InjectedFsyncError, MAX_FSYNC_DELAY_MS } from './faults.ts';
export type { StorageFaultState } from './faults.ts';
export { DEFAULT_STORAGE_LIMITS } from './limits.ts';
export type { StorageLimits } from './limits.ts';
export {
  StorageError,
  StorageLimitError,
  StorageClosedError,
  StorageFailedError,
  StorageLockedError,
  StorageCorruptionError,
  StorageEncryptionError,
} from './errors.ts';
export { reencryptDataDir } from './reencrypt.ts';
export type { ReencryptOptions, ReencryptResult } from './reencrypt.ts';
