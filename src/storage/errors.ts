// Failures of the storage layer itself (the Raft read errors come from raft/). Each class is one
// failure a caller can act on and carries the gRPC status code the API layer should report.

const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;
const GRPC_DATA_LOSS = 15;

export class StorageError extends Error {
  override name = 'StorageError';
  readonly grpcCode: number;
  constructor(message: string, grpcCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.grpcCode = grpcCode;
  }
}

/** A bound from StorageLimits would be exceeded; nothing was staged. Commit, then retry. */
export class StorageLimitError extends StorageError {
  override name = 'StorageLimitError';
  constructor(message: string) {
    super(`storage: ${message}`, GRPC_RESOURCE_EXHAUSTED);
  }
}

/** The NodeStorage was closed. */
export class StorageClosedError extends StorageError {
  override name = 'StorageClosedError';
  constructor() {
    super('storage: closed', GRPC_UNAVAILABLE);
  }
}

/**
 * An LMDB commit failed (disk full, I/O error). Memory and disk may now disagree, so every later
 * write fails too; the process should exit and recover from disk.
 */
export class StorageFailedError extends StorageError {
  override name = 'StorageFailedError';
  constructor(cause: unknown) {
    super(`storage: a commit failed, restart to recover (${String(cause)})`, GRPC_INTERNAL, { cause });
  }
}

/** Another process (or another NodeStorage in this one) has the data directory open. */
export class StorageLockedError extends StorageError {
  override name = 'StorageLockedError';
  constructor(lockFile: string, pid: number) {
    super(
      `storage: ${lockFile} is held by process ${pid}; stop it (or delete the file if that process is gone)`,
      GRPC_FAILED_PRECONDITION,
    );
  }
}

/** What is on disk contradicts itself (a missing log entry, a short snapshot, an unknown format). */
export class StorageCorruptionError extends StorageError {
  override name = 'StorageCorruptionError';
  constructor(message: string) {
    super(`storage: corrupt data: ${message}`, GRPC_DATA_LOSS);
  }
}

/**
 * Encrypted data cannot be read: no key file was given for an encrypted data directory, the key
 * file lacks a key the data was sealed with, or a key under a known id is not the right one.
 */
export class StorageEncryptionError extends StorageError {
  override name = 'StorageEncryptionError';
  constructor(message: string) {
    super(`storage: ${message}`, GRPC_FAILED_PRECONDITION);
  }
}
