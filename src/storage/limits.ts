// Every bound the storage layer enforces, with its default, in one place.

const KIB = 1024;
const MIB = 1024 * KIB;

export interface StorageLimits {
  /**
   * Bytes staged (appended entries, snapshot data, records) but not yet committed by `commit()`. Past it the staging call throws StorageLimitError before changing anything.
   */
  maxStagedBytes: number;
  /**
   * Bytes of recent log entries one group keeps in memory after they are durable. Entries not yet
   * durable are always kept (they are bounded by `maxStagedBytes`); older ones are read from LMDB.
   */
  logCacheBytesPerGroup: number;
  /** Snapshot data is stored in chunks of this many bytes (one LMDB value each, LZ4-compressed). */
  snapshotChunkBytes: number;
  /**
   * Bytes of a stored snapshot Raft's `snapshot()` reads per call (to send it to a follower). A
   * larger snapshot is read over several calls, answering "temporarily unavailable" (Raft tries
   * again at the follower's next heartbeat) until it is all in, so the loop never stalls on it.
   */
  snapshotReadBytesPerCall: number;
  /** A write-ahead log segment is closed and a new one started past this many bytes (wal.ts). */
  walSegmentBytes: number;
  /**
   * A commit whose writes exceed this (or that writes snapshot chunks) skips the write-ahead log:
   * it goes straight to LMDB in its own transaction, with everything before it.
   */
  walMaxRecordBytes: number;
  /**
   * Commits in the write-ahead log are written to LMDB, many per transaction, once this many bytes
   * are waiting or `lmdbFlushIntervalMs` after the first one, whichever comes first. Until then
   * their log entries stay in memory.
   */
  lmdbFlushBytes: number;
  lmdbFlushIntervalMs: number;
  /**
   * Log entries a compaction left in LMDB deleted per LMDB transaction, at least (twice the
   * entries appended since the last one, when more, so the deletions keep up with the log).
   */
  logTrimEntriesPerTransaction: number;
  /**
   * Bytes of commits LMDB does not hold yet (waiting or in an LMDB transaction) past which a
   * commit waits for LMDB instead of only the log: the bound on memory when LMDB falls behind
   * (the group caches pin those commits' entries).
   */
  maxUnstoredBytes: number;
  /**
   * Bytes of snapshot pieces handed to LMDB and not yet written past which the build waits after
   * its step (NodeStorage.snapshotPiecesWithinBound): the bound on memory when the disk is slower
   * than the encoding. The node's other commits never wait for pieces.
   */
  maxSnapshotPieceBytesInFlight: number;
}

export const DEFAULT_STORAGE_LIMITS: Readonly<StorageLimits> = Object.freeze({
  maxStagedBytes: 1024 * MIB,
  logCacheBytesPerGroup: 4 * MIB,
  snapshotChunkBytes: 1 * MIB,
  snapshotReadBytesPerCall: 32 * MIB,
  walSegmentBytes: 16 * MIB, // 64 until session 10: each segment is now created at this size (sparse), and recovery reads whole segments
  walMaxRecordBytes: 16 * MIB,
  lmdbFlushBytes: 16 * MIB,
  logTrimEntriesPerTransaction: 4096,
  lmdbFlushIntervalMs: 1000, // 100 until session 8: fewer LMDB fsyncs beside the log writes (docs/BENCHMARKS.md)
  maxUnstoredBytes: 256 * MIB,
  maxSnapshotPieceBytesInFlight: 16 * MIB,
});
