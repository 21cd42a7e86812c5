// A one-member ReplicaHost over MemoryStorage, driven by hand (tests that need exact control over
// turns, restarts and replays): the real host and replica code with no I/O.
import { pino } from 'pino';
import { MemoryStorage, defaultRaftConfig, seededRng } from '../../src/raft/index.ts';
import { LimitsSchema } from '../../src/server/config.ts';
import type { Limits } from '../../src/server/config.ts';
import { ReplicaHost } from '../../src/server/host.ts';
import type { HostTransport } from '../../src/server/host.ts';
import { NodeMetrics } from '../../src/server/metrics.ts';
import { bootstrapEntries } from '../../src/server/replica.ts';

/** Storage holding a bootstrapped one-member group (member 1), as a node's first start writes it. */
export function bootstrappedStorage(): MemoryStorage {
  const storage = new MemoryStorage();
  const entries = bootstrapEntries([{ id: 1, name: 'n1', peerUrls: ['http://127.0.0.1:1'], clientUrls: [] }]);
  storage.append(entries);
  storage.setHardState({ term: 1, vote: 0, commit: entries.length });
  return storage;
}

/** A host for member 1 over `storage` (durable as soon as written), range 1 open. */
export function singleNodeHost(storage: MemoryStorage, incarnation: number, limits: Partial<Limits> = {}): ReplicaHost {
  return memberOneHost(storage, incarnation, {}, limits);
}

/** The same with the peer transport and the commit given (what a test watches of the turn's I/O). */
export function memberOneHost(
  storage: MemoryStorage,
  incarnation: number,
  io: { transport?: HostTransport; commit?: () => Promise<void> },
  limits: Partial<Limits> = {},
): ReplicaHost {
  let clock = 0;
  const host = new ReplicaHost({
    nodeId: 1,
    storage: { group: () => storage, commit: io.commit ?? (async () => {}) },
    transport: io.transport ?? { send: () => {} },
    limits: LimitsSchema.parse(limits),
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

/** Ticks and turns the host `turns` times: enough to elect itself and apply what was proposed. */
export async function settle(host: ReplicaHost, turns = 50): Promise<void> {
  for (let i = 0; i < turns; i++) {
    host.tick();
    await host.turn();
  }
}
