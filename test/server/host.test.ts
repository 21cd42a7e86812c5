// The multi-Raft loop over in-memory storage: the real ReplicaHost and Replica code, driven by
// hand, for cases that need exact control (a restart that replays the log under new requests).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrappedStorage, settle, singleNodeHost } from './single-node.ts';

const put = (key: string, value: string) => ({
  op: 'put' as const,
  req: { key: Buffer.from(key), value: Buffer.from(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
});

describe('replica host', () => {
  it('a restarted node never answers a new request with the result of a replayed one', async () => {
    const storage = bootstrappedStorage();

    const first = singleNodeHost(storage, 1);
    await settle(first);
    const replica = first.replicas.get(1)!;
    const old = replica.propose(put('a', 'old'));
    await settle(first);
    assert.equal(((await old) as { header: { revision: number } }).header.revision, 2);

    // Restart over the same (durable) storage: the log is replayed while a new request, whose
    // node-local command id is again 1, waits for its own entry.
    const second = singleNodeHost(storage, 2);
    const fresh = second.replicas.get(1)!.propose(put('b', 'new'));
    await settle(second);
    const response = (await fresh) as { header: { revision: number } };
    assert.equal(response.header.revision, 3, 'the new put must get its own revision, not the replayed one');
    const range = second.replicas.get(1)!.store.range({
      key: Buffer.from('b'), rangeEnd: new Uint8Array(0), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key',
      serializable: true, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    });
    assert.equal(Buffer.from(range.kvs[0].value).toString(), 'new');
  });
});
