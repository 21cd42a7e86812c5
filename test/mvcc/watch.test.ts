// Watches: live delivery, key ranges, filters, prevKv, replay from history, batching, pause/resume
// backpressure, compaction, cancel, limits and misuse.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore, WatchCompactedError } from '../../src/mvcc/index.ts';
import type { WatchEvent, WatchOptions } from '../../src/mvcc/index.ts';
import { AssertionError } from '../../src/util/index.ts';
import { b, delReq, evStr, opDel, opPut, prefixEnd, putReq, throwsMessage, txnReq, watchOpts } from './helpers.ts';

/** A sink that records batches as text: "rev: EV, EV". */
function recorder(pauseAfter = Number.POSITIVE_INFINITY) {
  const batches: string[] = [];
  const sink = (events: WatchEvent[], revision: number) => {
    batches.push(`${revision}: ${events.map(evStr).join(', ')}`);
    return batches.length < pauseAfter;
  };
  return { batches, sink };
}

function watch(store: MvccStore, key: string, opts: Partial<WatchOptions> = {}, pauseAfter?: number) {
  const rec = recorder(pauseAfter);
  const handle = store.watch(watchOpts(key, opts), rec.sink);
  return { ...rec, handle };
}

describe('watch: live', () => {
  it('delivers each write synchronously, one batch per revision', () => {
    const store = new MvccStore();
    const w = watch(store, 'k');
    store.put(putReq('k', 'v1'));
    store.put(putReq('other', 'x'));
    store.deleteRange(delReq('k'));
    assert.deepEqual(w.batches, ['2: PUT k=v1@2', '4: DELETE k@4']);
    assert.equal(w.handle.state, 'synced');
    assert.equal(w.handle.nextRevision, 5);
  });

  it('watches a prefix, "\\0" (to the end), and an empty key (everything)', () => {
    const store = new MvccStore();
    const prefix = watch(store, 'p/', { rangeEnd: prefixEnd('p/') });
    const fromKey = watch(store, 'p/m', { rangeEnd: new Uint8Array([0]) });
    const everything = watch(store, '', { rangeEnd: new Uint8Array([0]) });
    for (const k of ['a', 'p/a', 'p/z', 'q']) store.put(putReq(k, '1'));
    assert.deepEqual(prefix.batches, ['3: PUT p/a=1@3', '4: PUT p/z=1@4']);
    assert.deepEqual(fromKey.batches, ['4: PUT p/z=1@4', '5: PUT q=1@5']);
    assert.equal(everything.batches.length, 4);
  });

  it('filters puts or deletes', () => {
    const store = new MvccStore();
    const noPut = watch(store, 'k', { noPut: true });
    const noDelete = watch(store, 'k', { noDelete: true });
    store.put(putReq('k', '1'));
    store.deleteRange(delReq('k'));
    assert.deepEqual(noPut.batches, ['3: DELETE k@3']);
    assert.deepEqual(noDelete.batches, ['2: PUT k=1@2']);
  });

  it('fills prevKv only when asked', () => {
    const store = new MvccStore();
    const withPrev = watch(store, 'k', { prevKv: true });
    const without = watch(store, 'k');
    store.put(putReq('k', '1'));
    store.put(putReq('k', '2'));
    store.deleteRange(delReq('k'));
    assert.deepEqual(withPrev.batches, ['2: PUT k=1@2', '3: PUT k=2@3 prev=1@2', '4: DELETE k@4 prev=2@3']);
    assert.deepEqual(without.batches, ['2: PUT k=1@2', '3: PUT k=2@3', '4: DELETE k@4']);
  });

  it('hands a txn events to each watcher in one batch, in op order', () => {
    const store = new MvccStore();
    store.put(putReq('a', '0'));
    const w = watch(store, 'a', { rangeEnd: b('z') });
    store.txn(txnReq([], [opPut('c', '1'), opDel('a'), opPut('b', '2')]));
    assert.deepEqual(w.batches, ['3: PUT c=1@3, DELETE a@3, PUT b=2@3']);
  });

  it('watchers that get a whole revision share its events; filters and prevKv still apply per watcher', () => {
    const store = new MvccStore();
    store.put(putReq('a/1', 'old'));
    const seen = new Map<string, WatchEvent[][]>();
    const watchAs = (name: string, opts: Partial<WatchOptions>) =>
      store.watch(watchOpts('a/', { rangeEnd: prefixEnd('a/'), ...opts }), (events) => {
        seen.set(name, [...(seen.get(name) ?? []), events]);
      });
    watchAs('bare1', {});
    watchAs('bare2', {});
    watchAs('prev1', { prevKv: true });
    watchAs('prev2', { prevKv: true });
    watchAs('noDelete', { noDelete: true });
    watchAs('noPut', { noPut: true });
    watchAs('narrow', { key: b('a/1'), rangeEnd: b('a/2') });
    store.txn(txnReq([], [opPut('a/1', 'new'), opDel('a/0'), opPut('a/2', 'x')])); // a/0 absent: no event
    store.txn(txnReq([], [opPut('a/3', 'y'), opDel('a/1')]));
    const batch = (name: string, i: number) => (seen.get(name) ?? [])[i] ?? [];
    const text = (name: string, i: number) => batch(name, i).map(evStr);
    assert.deepEqual(text('bare1', 0), ['PUT a/1=new@3', 'PUT a/2=x@3']);
    assert.deepEqual(text('prev1', 0), ['PUT a/1=new@3 prev=old@2', 'PUT a/2=x@3']);
    assert.deepEqual(text('prev1', 1), ['PUT a/3=y@4', 'DELETE a/1@4 prev=new@3']);
    assert.deepEqual(text('noDelete', 1), ['PUT a/3=y@4']);
    assert.deepEqual(text('noPut', 0), ['DELETE a/1@4']);
    assert.equal(seen.get('noPut')?.length, 1, 'a batch with nothing wanted is not delivered');
    assert.deepEqual(text('narrow', 0), ['PUT a/1=new@3']);
    assert.deepEqual(text('narrow', 1), ['DELETE a/1@4']);
    for (const i of [0, 1]) {
      assert.equal(batch('bare1', i), batch('bare2', i), 'one array for every watcher without prevKv');
      assert.equal(batch('prev1', i), batch('prev2', i), 'one array for every watcher with prevKv');
      assert.notEqual(batch('bare1', i), batch('prev1', i));
    }
    assert.equal(batch('noDelete', 0), batch('bare1', 0), 'a filter that drops nothing shares too');
    assert.notEqual(batch('noDelete', 1), batch('bare1', 1));
  });

  it('matches many range watchers against a large revision, each in write order', () => {
    const store = new MvccStore();
    const watchers = Array.from({ length: 80 }, (_, i) => watch(store, `p${String(i).padStart(2, '0')}/`, { rangeEnd: prefixEnd(`p${String(i).padStart(2, '0')}/`) }));
    const everything = watch(store, '', { rangeEnd: new Uint8Array([0]) });
    // 120 puts in a scrambled key order, in one txn: 120 x 81 pairs takes the sorted matching path
    const order = Array.from({ length: 120 }, (_, i) => (i * 53) % 120);
    store.txn(txnReq([], order.map((n) => opPut(`p${String(n % 80).padStart(2, '0')}/${n}`, 'v'))));
    for (let i = 0; i < 80; i++) {
      const mine = order.filter((n) => n % 80 === i).map((n) => `PUT p${String(i).padStart(2, '0')}/${n}=v@2`);
      assert.deepEqual(watchers[i].batches, [`2: ${mine.join(', ')}`]);
    }
    assert.equal(everything.batches[0].split(', ').length, 120);
    assert.ok(everything.batches[0].startsWith('2: PUT p00/0=v@2, PUT p53/53=v@2, PUT p26/106=v@2'));
  });

  it('stops after cancel', () => {
    const store = new MvccStore();
    const w = watch(store, 'k');
    store.put(putReq('k', '1'));
    w.handle.cancel();
    store.put(putReq('k', '2'));
    assert.deepEqual(w.batches, ['2: PUT k=1@2']);
    assert.equal(w.handle.state, 'cancelled');
    assert.equal(store.watcherCount, 0);
  });

  it('a future start revision waits for it', () => {
    const store = new MvccStore();
    const w = watch(store, 'k', { startRevision: 4 });
    store.put(putReq('k', '1'));
    store.put(putReq('k', '2'));
    store.put(putReq('k', '3'));
    assert.deepEqual(w.batches, ['4: PUT k=3@4']);
  });
});

describe('watch: replay', () => {
  function history(): MvccStore {
    const store = new MvccStore();
    store.put(putReq('k', '1')); // 2
    store.put(putReq('x', '1')); // 3
    store.put(putReq('k', '2')); // 4
    store.deleteRange(delReq('k')); // 5
    store.put(putReq('k', '3')); // 6
    return store;
  }

  it('replays from a past revision in order, then continues live', () => {
    const store = history();
    const w = watch(store, 'k', { startRevision: 3, prevKv: true });
    assert.deepEqual(w.batches, ['6: PUT k=2@4 prev=1@2, DELETE k@5 prev=2@4, PUT k=3@6']);
    store.put(putReq('k', '4'));
    assert.deepEqual(w.batches.slice(1), ['7: PUT k=4@7 prev=3@6']);
  });

  it('startRevision 1 replays everything; 0 replays nothing', () => {
    const store = history();
    assert.equal(watch(store, 'k', { startRevision: 1 }).batches[0].split(', ').length, 4);
    assert.deepEqual(watch(store, 'k', { startRevision: 0 }).batches, []);
    assert.deepEqual(watch(store, 'k', { startRevision: 7 }).batches, []);
  });

  it('batches replay by maxEventsPerWatchBatch without splitting a revision', () => {
    const store = new MvccStore({ maxEventsPerWatchBatch: 3 });
    store.put(putReq('a', '1')); // 2
    store.put(putReq('b', '1')); // 3
    store.txn(txnReq([], [opPut('a', '2'), opPut('b', '2'), opPut('c', '2'), opPut('d', '2')])); // 4: four events
    store.put(putReq('a', '3')); // 5
    store.put(putReq('b', '3')); // 6
    const w = watch(store, 'a', { rangeEnd: b('z'), startRevision: 1 });
    assert.deepEqual(w.batches, [
      '6: PUT a=1@2, PUT b=1@3',
      '6: PUT a=2@4, PUT b=2@4, PUT c=2@4, PUT d=2@4',
      '6: PUT a=3@5, PUT b=3@6',
    ]);
  });

  it('a start below the compacted revision fails with the compact revision; at it, replays it', () => {
    const store = history();
    store.compact({ revision: 4, physical: true });
    assert.throws(
      () => store.watch(watchOpts('k', { startRevision: 3 }), () => {}),
      (error: unknown) => error instanceof WatchCompactedError && error.compactRevision === 4 && error.message === 'etcdserver: mvcc: required revision has been compacted',
    );
    assert.equal(store.watcherCount, 0);
    // at the compacted revision: its events replay; prevKv of an event at it is compacted away (as in etcd)
    const w = watch(store, 'k', { startRevision: 4, prevKv: true });
    assert.deepEqual(w.batches, ['6: PUT k=2@4, DELETE k@5 prev=2@4, PUT k=3@6']);
  });

  it('a tombstone at the compacted revision is still replayed', () => {
    const store = history();
    store.compact({ revision: 5, physical: true });
    assert.deepEqual(watch(store, 'k', { startRevision: 5 }).batches, ['6: DELETE k@5, PUT k=3@6']);
  });

  it('treats a negative start as etcd does: compacted below the compacted revision (-1 before any), else from the next write', () => {
    const store = new MvccStore();
    store.put(putReq('k', '1'));
    const compactedAt = (start: number) => {
      try {
        store.watch(watchOpts('k', { startRevision: start }), () => {}).cancel();
        return null;
      } catch (error) {
        assert.ok(error instanceof WatchCompactedError, String(error));
        return error.compactRevision;
      }
    };
    assert.equal(compactedAt(-2), -1);
    assert.equal(compactedAt(-1), null);
    const w = watch(store, 'k', { startRevision: -1 });
    assert.deepEqual(w.batches, [], 'no replay');
    store.put(putReq('k', '2'));
    assert.deepEqual(w.batches, ['3: PUT k=2@3']);
    store.compact({ revision: 0, physical: false });
    assert.equal(compactedAt(-1), 0);
    store.compact({ revision: 2, physical: false });
    assert.equal(compactedAt(-1), 2);
    assert.equal(compactedAt(1), 2);
    assert.equal(compactedAt(2), null);
  });
});

describe('watch: backpressure', () => {
  it('a sink returning false pauses the watcher; resume replays what it missed, then goes live', () => {
    const store = new MvccStore();
    const w = watch(store, 'k', {}, 1);
    store.put(putReq('k', '1'));
    assert.equal(w.handle.state, 'paused');
    store.put(putReq('k', '2'));
    store.put(putReq('k', '3'));
    assert.deepEqual(w.batches, ['2: PUT k=1@2']);
    assert.equal(w.handle.nextRevision, 3);
    w.handle.resume(); // the sink pauses again after this batch
    assert.deepEqual(w.batches.slice(1), ['4: PUT k=2@3, PUT k=3@4']);
    assert.equal(w.handle.state, 'paused');
  });

  it('resume when caught up returns to live delivery', () => {
    const store = new MvccStore();
    let accept = false;
    const got: string[] = [];
    const handle = store.watch(watchOpts('k'), (events) => {
      got.push(...events.map(evStr));
      return accept;
    });
    store.put(putReq('k', '1'));
    store.put(putReq('k', '2'));
    accept = true;
    handle.resume();
    store.put(putReq('k', '3'));
    assert.deepEqual(got, ['PUT k=1@2', 'PUT k=2@3', 'PUT k=3@4']);
    assert.equal(handle.state, 'synced');
  });

  it('an explicit pause() buffers nothing; resume() delivers everything since', () => {
    const store = new MvccStore();
    const w = watch(store, 'k');
    w.handle.pause();
    for (let i = 0; i < 5; i++) store.put(putReq('k', String(i)));
    assert.equal(w.batches.length, 0);
    w.handle.resume();
    assert.equal(w.batches.length, 1);
    assert.equal(w.batches[0].split(', ').length, 5);
  });

  it('resume after compaction passed the watcher fails with the compact revision and cancels it', () => {
    const store = new MvccStore();
    const w = watch(store, 'k', {}, 1);
    store.put(putReq('k', '1'));
    store.put(putReq('k', '2'));
    store.put(putReq('k', '3'));
    store.compact({ revision: 4, physical: false });
    assert.throws(() => w.handle.resume(), (error: unknown) => error instanceof WatchCompactedError && error.compactRevision === 4);
    assert.equal(w.handle.state, 'cancelled');
  });

  it('a sink pausing another watcher mid-delivery does not make it miss that revision', () => {
    const store = new MvccStore();
    const second = recorder();
    let secondHandle: ReturnType<MvccStore['watch']> | null = null;
    store.watch(watchOpts('k'), () => {
      secondHandle?.pause();
    });
    secondHandle = store.watch(watchOpts('k'), second.sink);
    store.put(putReq('k', '1'));
    assert.deepEqual(second.batches, []);
    secondHandle.resume();
    assert.deepEqual(second.batches, ['2: PUT k=1@2']);
  });
});

describe('watch: limits and misuse', () => {
  it('enforces maxWatchersPerStore', () => {
    const store = new MvccStore({ maxWatchersPerStore: 2 });
    store.watch(watchOpts('a'), () => {});
    const second = store.watch(watchOpts('b'), () => {});
    throwsMessage(() => store.watch(watchOpts('c'), () => {}), 'etcdserver: too many watchers');
    second.cancel();
    assert.doesNotThrow(() => store.watch(watchOpts('c'), () => {}));
  });

  it('a sink must not write to the store', () => {
    const store = new MvccStore();
    store.watch(watchOpts('k'), () => {
      store.put(putReq('other', 'x'));
    });
    assert.throws(() => store.put(putReq('k', '1')), AssertionError);
    assert.equal(store.currentRevision, 2); // the put itself committed
  });

  it('a throwing sink is cancelled, other watchers still get the batch, and the error surfaces', () => {
    const store = new MvccStore();
    const bad = store.watch(watchOpts('k'), () => {
      throw new Error('sink bug');
    });
    const good = watch(store, 'k');
    assert.throws(() => store.put(putReq('k', '1')), /sink bug/);
    assert.equal(bad.state, 'cancelled');
    assert.deepEqual(good.batches, ['2: PUT k=1@2']);
    store.put(putReq('k', '2'));
    assert.equal(good.batches.length, 2);
  });

  it('sees deletes from a lease revoke as one batch', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    store.put(putReq('b', '1', { lease: 1 }));
    store.put(putReq('a', '1', { lease: 1 }));
    const w = watch(store, 'a', { rangeEnd: new Uint8Array([0]) });
    store.leaseRevoke(1);
    assert.deepEqual(w.batches, ['4: DELETE a@4, DELETE b@4']);
  });
});
