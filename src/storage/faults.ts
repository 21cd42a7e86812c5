// Disk faults for chaos tests: slow fsyncs and a failing fsync, injected into NodeStorage.commit().
// A test-only seam, driven by the owning process (POST /debug/faults on a node started with
// --experimental-fault-injection); inert until someone calls it.

/** Upper bound on an injected fsync latency, so a typo cannot stall a node for hours. */
export const MAX_FSYNC_DELAY_MS = 10_000;

/** The error an injected fsync failure carries (what a real one looks like: EIO from fsync(2)). */
export class InjectedFsyncError extends Error {
  override name = 'InjectedFsyncError';
  readonly code = 'EIO';
  constructor() {
    super('fsync: input/output error (EIO, injected by fault injection)');
  }
}

export interface StorageFaultState {
  /** Extra latency per commit, ms, drawn uniformly from [lo, hi]; null when off. */
  fsyncDelayMs: [number, number] | null;
  /** The next commit will fail. */
  failNextFsync: boolean;
}

export class StorageFaults {
  private delay: [number, number] | null = null;
  private failPieceAfterMs: number | null = null;
  private failNext = false;
  private failLmdbAfterMs: number | null = null;

  /**
   * Every commit from now on becomes durable `loMs..hiMs` later than LMDB reports (a slow or
   * overloaded disk). Commits stay in order, so a slow one also holds back the ones after it.
   * `[0, 0]` turns it off.
   */
  setFsyncDelay(loMs: number, hiMs: number): void {
    const valid = (ms: number) => Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_FSYNC_DELAY_MS;
    if (!valid(loMs) || !valid(hiMs) || loMs > hiMs) {
      throw new RangeError(
        `fsync delay must be integers 0 <= lo <= hi <= ${MAX_FSYNC_DELAY_MS} ms, got [${loMs}, ${hiMs}]`,
      );
    }
    this.delay = hiMs === 0 ? null : [loMs, hiMs];
  }

  /**
   * The next commit fails as an fsync returning EIO would: nothing of its batch reaches the disk,
   * and the storage refuses every later write (StorageFailedError), so the node must fail-stop.
   */
  failNextFsync(): void {
    this.failNext = true;
  }

  /**
   * The next LMDB transaction that takes the write-ahead log's commits writes nothing and fails
   * with EIO `afterMs` later (a disk error found at its fsync), as the storage tests need to see
   * that nothing is written to LMDB after a failed transaction.
   */
  failNextLmdbWrite(afterMs: number): void {
    this.failLmdbAfterMs = afterMs;
  }

  /**
   * The next snapshot piece written beside the commits (NodeStorage.writeSnapshotPiece) is not
   * written and fails with EIO `afterMs` later, as the tests need to see that a snapshot record
   * never reaches LMDB without its pieces.
   */
  failNextPieceWrite(afterMs: number): void {
    this.failPieceAfterMs = afterMs;
  }

  /** Clears every fault not yet taken effect (a storage that already failed stays failed). */
  heal(): void {
    this.delay = null;
    this.failNext = false;
    this.failLmdbAfterMs = null;
    this.failPieceAfterMs = null;
  }

  state(): StorageFaultState {
    return { fsyncDelayMs: this.delay === null ? null : [...this.delay], failNextFsync: this.failNext };
  }

  /** NodeStorage: whether this commit must fail (consumes the fault). */
  takeFsyncFailure(): boolean {
    const fail = this.failNext;
    this.failNext = false;
    return fail;
  }

  /** NodeStorage: ms after which this LMDB transaction fails, or null (consumes the fault). */
  takeLmdbFailure(): number | null {
    const afterMs = this.failLmdbAfterMs;
    this.failLmdbAfterMs = null;
    return afterMs;
  }

  /** NodeStorage: ms after which this snapshot piece write fails, or null (consumes the fault). */
  takePieceFailure(): number | null {
    const afterMs = this.failPieceAfterMs;
    this.failPieceAfterMs = null;
    return afterMs;
  }

  /** NodeStorage: the extra latency of this commit, ms (0 when off). */
  nextFsyncDelayMs(): number {
    if (this.delay === null) return 0;
    const [lo, hi] = this.delay;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }
}
