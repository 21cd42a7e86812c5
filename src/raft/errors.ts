// Errors the Raft core throws at its callers. Each class is one failure a caller can act on;
// each carries the gRPC status code an API layer should map it to and etcd's message string.

/** gRPC status codes used below (numeric values from grpc's status.proto). */
const GRPC_OUT_OF_RANGE = 11;
const GRPC_UNAVAILABLE = 14;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_INVALID_ARGUMENT = 3;

export class RaftError extends Error {
  override name = 'RaftError';
  readonly grpcCode: number;
  constructor(message: string, grpcCode: number = GRPC_FAILED_PRECONDITION) {
    super(message);
    this.grpcCode = grpcCode;
  }
}

/** Requested log index is below the first index still held (it was compacted into a snapshot). */
export class CompactedError extends RaftError {
  override name = 'CompactedError';
  constructor() {
    super('requested index is unavailable due to compaction', GRPC_OUT_OF_RANGE);
  }
}

/** Requested log index is above the last index held. */
export class UnavailableError extends RaftError {
  override name = 'UnavailableError';
  constructor() {
    super('requested entry at index is unavailable', GRPC_OUT_OF_RANGE);
  }
}

/** The storage is building a snapshot; the leader retries on a later heartbeat. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  override name = 'SnapshotTemporarilyUnavailableError';
  constructor() {
    super('snapshot is temporarily unavailable', GRPC_UNAVAILABLE);
  }
}

/** A snapshot older than the one already held was offered to or requested from storage. */
export class SnapshotOutOfDateError extends RaftError {
  override name = 'SnapshotOutOfDateError';
  constructor() {
    super('requested index is older than the existing snapshot', GRPC_FAILED_PRECONDITION);
  }
}

/** Why a proposal (or a local read/transfer request) was refused. */
export type ProposalDropReason =
  | 'noLeader'
  | 'forwardingDisabled'
  | 'transferInProgress'
  | 'notCandidateOrLeader'
  | 'removedFromConfig'
  | 'uncommittedSizeLimit'
  | 'confChangePending'
  | 'confChangeInvalid'
  | 'outboxFull'
  | 'tooManyPendingReads';

/** The proposal was not appended; the caller may retry (possibly at another member). */
export class ProposalDroppedError extends RaftError {
  override name = 'ProposalDroppedError';
  readonly reason: ProposalDropReason;
  readonly detail: string;
  constructor(reason: ProposalDropReason, detail = '') {
    super(detail === '' ? `raft proposal dropped (${reason})` : `raft proposal dropped (${reason}): ${detail}`, GRPC_UNAVAILABLE);
    this.reason = reason;
    this.detail = detail;
  }
}

/** A configuration change that cannot be applied to the current configuration. */
export class ConfChangeError extends RaftError {
  override name = 'ConfChangeError';
  constructor(message: string) {
    super(`invalid conf change: ${message}`, GRPC_INVALID_ARGUMENT);
  }
}

/** A RaftConfig that the core refuses to run with. */
export class ConfigError extends RaftError {
  override name = 'ConfigError';
  constructor(message: string) {
    super(`invalid raft config: ${message}`, GRPC_INVALID_ARGUMENT);
  }
}
