// The Raft core's public surface: the vocabulary, RawNode, in-memory storage, errors and helpers.
export * from './types.ts';
export { RawNode } from './rawnode.ts';
export type { RaftStatus, ProgressStatus } from './status.ts';
export { MemoryStorage } from './memory-storage.ts';
export {
  RaftError,
  CompactedError,
  UnavailableError,
  SnapshotTemporarilyUnavailableError,
  SnapshotOutOfDateError,
  ProposalDroppedError,
  ConfChangeError,
  ConfigError,
  type ProposalDropReason,
} from './errors.ts';
export { encodeConfChange, decodeConfChange } from './confchange.ts';
export { defaultRaftConfig, MAX_OUTBOX_MESSAGES, MAX_PENDING_READ_INDEX, MAX_PENDING_READ_STATES } from './config.ts';
export { seededRng } from './rng.ts';
export { copyConfState, entrySizeBytes } from './entries.ts';
