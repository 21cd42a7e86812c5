// The multi-Raft loop over in-memory storage: the real ReplicaHost and Replica code, driven by
// hand, for cases that need exact control (a restart that replays the log under new requests).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryStorage, defaultRaftConfig, seededRng } from '../../src/raft/index.ts';
import { LimitsSchema } from '../../src/server/config.ts';
import { ReplicaHost } from '../../src/server/host.ts';
import { NodeMetrics } from '../../src/server/metrics.ts';
import { bootstrapEntries } from '../../src/server/replica.ts';

const put = (key: string, value: string) => ({
  op: 'put' as const,
  req: { key: Buffer.from(key), value: Buffer.from(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
});

function singleNodeHost(storage: MemoryStorage, incarnation: number): ReplicaHost {
  let clock = 0;
  const host = new ReplicaHost({
    nodeId: 1,
    storage: { group: () => storage, commit: async () => {} },
    transport: { send: () => {} },
    limits: LimitsSchema.parse({}),
    logger: pino({ level: 'silent' }),
    metrics: new NodeMetrics(),
    now: () => (clock += 1),
    raftConfig: () => defaultRaftConfig(1, seededRng(1), { electionTicks: 2, heartbeatTicks: 1 }),
    onStoreReplaced: () => {},
    onMembershipChanged: () => {},
    onTick: () => {},
    onRemoved: () => {},
    incarnation,
  });
  host.openReplica(1);
  return host;
}

async function settle(host: ReplicaHost): Promise<void> {
  for (let i = 0; i < 50; i++) {
    host.tick();
    await host.turn();
  }
}

describe('replica host', () => {
  it('a restarted node never answers a new request with the result of a replayed one', async () => {
    const storage = new MemoryStorage();
    const entries = bootstrapEntries([{ id: 1, name: 'n1', peerUrls: ['http://127.0.0.1:1'], clientUrls: [] }]);
    storage.append(entries);
    storage.setHardState({ term: 1, vote: 0, commit: entries.length });

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
