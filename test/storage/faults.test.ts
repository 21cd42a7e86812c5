// The disk fault seam (StorageFaults) on real LMDB files: an injected fsync failure loses its batch
// and fails the storage for good (fail-stop), and an injected fsync delay holds commits back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  InjectedFsyncError,
  MAX_FSYNC_DELAY_MS,
  NodeStorage,
  StorageFailedError,
  StorageFaults,
} from '../../src/storage/index.ts';
import { entry, tempDir } from './support.ts';

describe('storage faults', () => {
  it('a failed fsync loses its batch, and every later write fails too', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const s = NodeStorage.open({ dataDir: dir });
      try {
        s.group(1).append([entry(1, 1), entry(2, 1)]);
        await s.commit();
        s.faults.failNextFsync();
        assert.deepEqual(s.faults.state(), { fsyncDelayMs: null, failNextFsync: true });
        s.group(1).append([entry(3, 1)]);
        await assert.rejects(
          s.commit(),
          (error: unknown) =>
            error instanceof StorageFailedError && error.cause instanceof InjectedFsyncError,
        );
        assert.equal(s.faults.state().failNextFsync, false, 'the fault is consumed');
        // Sticky: the storage refuses more work even though the fault is gone.
        await assert.rejects(s.commit(), StorageFailedError);
        assert.throws(() => s.group(1).append([entry(4, 1)]), StorageFailedError);
      } finally {
        await s.close();
      }
      const reopened = NodeStorage.open({ dataDir: dir });
      try {
        assert.equal(reopened.group(1).lastIndex(), 2, 'the failed batch never reached the disk');
        reopened.group(1).append([entry(3, 1)]);
        await reopened.commit(); // a restart recovers
        assert.equal(reopened.group(1).lastIndex(), 3);
      } finally {
        await reopened.close();
      }
    } finally {
      cleanup();
    }
  });

  it('an fsync delay holds each commit back, in order, until healed', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const s = NodeStorage.open({ dataDir: dir });
      try {
        s.faults.setFsyncDelay(150, 200);
        const started = performance.now();
        s.group(1).append([entry(1, 1)]);
        const first = s.commit();
        s.group(1).append([entry(2, 1)]);
        const second = s.commit();
        let firstDone = -1;
        void first.then(() => (firstDone = performance.now()));
        await second;
        const elapsed = performance.now() - started;
        assert.ok(firstDone > 0, 'commits become durable in order');
        assert.ok(elapsed >= 145, `two delayed commits took only ${elapsed.toFixed(0)} ms`);
        s.faults.heal();
        const healedAt = performance.now();
        s.group(1).append([entry(3, 1)]);
        await s.commit();
        assert.ok(performance.now() - healedAt < 140, 'no delay once healed');
        assert.deepEqual(s.faults.state(), { fsyncDelayMs: null, failNextFsync: false });
      } finally {
        await s.close();
      }
    } finally {
      cleanup();
    }
  });

  it('refuses delays out of bounds', () => {
    const faults = new StorageFaults();
    assert.throws(() => faults.setFsyncDelay(-1, 10), RangeError);
    assert.throws(() => faults.setFsyncDelay(20, 10), RangeError);
    assert.throws(() => faults.setFsyncDelay(0, MAX_FSYNC_DELAY_MS + 1), RangeError);
    assert.throws(() => faults.setFsyncDelay(1.5, 10), RangeError);
    faults.setFsyncDelay(10, 10);
    assert.equal(faults.nextFsyncDelayMs(), 10);
    faults.setFsyncDelay(0, 0);
    assert.equal(faults.state().fsyncDelayMs, null);
    assert.equal(faults.nextFsyncDelayMs(), 0);
  });
});
