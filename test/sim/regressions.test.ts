// Core bugs the simulator found, each kept as its smallest repro. A bug still open is marked
// `todo` (reported, not failing the suite); drop the `todo` once the core is fixed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng } from '../../src/raft/index.ts';
import type { ConfState, Message, NodeId } from '../../src/raft/index.ts';

function conf(voters: NodeId[], learners: NodeId[] = []): ConfState {
  return { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
}

/** Three nodes on MemoryStorage with a hand-driven message queue. */
class TinyCluster {
  readonly nodes = new Map<NodeId, { raw: RawNode; storage: MemoryStorage }>();
  queue: Message[] = [];

  constructor(maxInflightMsgs: number) {
    for (const id of [1, 2, 3]) {
      const storage = new MemoryStorage(conf([1, 2, 3]));
      const config = defaultRaftConfig(id, seededRng(id), {
        maxInflightMsgs,
        preVote: false,
        checkQuorum: false,
      });
      this.nodes.set(id, { storage, raw: new RawNode(config, storage) });
    }
  }

  raw(id: NodeId): RawNode {
    const node = this.nodes.get(id);
    assert.ok(node !== undefined);
    return node.raw;
  }

  ready(id: NodeId): void {
    const node = this.nodes.get(id);
    assert.ok(node !== undefined);
    while (node.raw.hasReady()) {
      const ready = node.raw.ready();
      if (ready.snapshot !== null) node.storage.applySnapshot(ready.snapshot);
      node.storage.append(ready.entries);
      if (ready.hardState !== null) node.storage.setHardState(ready.hardState);
      this.queue.push(...ready.messages);
      node.raw.advance();
    }
  }

  deliver(which: (msg: Message) => boolean): void {
    const taken = this.queue.filter(which);
    this.queue = this.queue.filter((msg) => !which(msg));
    for (const msg of taken) this.raw(msg.to).step(msg);
  }

  stabilize(): void {
    for (let round = 0; round < 50; round++) {
      for (const id of this.nodes.keys()) this.ready(id);
      if (this.queue.length === 0) return;
      this.deliver(() => true);
    }
    assert.fail('cluster did not stabilize');
  }
}

describe('core regressions found by the simulator', () => {
  // Found by `npm run sim -- --seeds 1 --start 1 --nodes 5` on the first simulator build (network
  // reordering within a tick): `step(appResp) threw AssertionError: cannot add into a full
  // inflights`. A stale ack raised `match` without freeing a window slot, cleared the paused flag,
  // and the leader sent into the full window. Fixed in the core (Progress.isPaused checks the window).
  it('a stale append ack with the inflight window full does not overfill it', () => {
    const cluster = new TinyCluster(1);
    const leader = cluster.raw(1);
    leader.campaign();
    cluster.stabilize();
    assert.equal(leader.status().softState.role, 'leader');
    leader.propose(new Uint8Array([1])); // append [e1] fills n2's window (1 message)
    cluster.ready(1);
    const late = cluster.queue.filter((msg) => msg.to === 2);
    cluster.queue = [];
    leader.tick(); // heartbeat; its response frees the window and resends (empty) append
    cluster.ready(1);
    cluster.deliver((msg) => msg.type === 'heartbeat');
    cluster.ready(2);
    cluster.ready(3);
    cluster.deliver((msg) => msg.type === 'heartbeatResp');
    cluster.ready(1);
    cluster.queue = cluster.queue.filter((msg) => msg.type !== 'app');
    leader.propose(new Uint8Array([2])); // append [e2] fills the window again
    cluster.ready(1);
    cluster.queue = cluster.queue.filter((msg) => msg.type !== 'app');
    leader.propose(new Uint8Array([3])); // waits for the window
    cluster.ready(1);
    cluster.queue.push(...late); // the first append arrives late; n2 acks e1, which frees nothing
    cluster.deliver((msg) => msg.to === 2);
    cluster.ready(2);
    cluster.deliver((msg) => msg.to === 1);
    cluster.ready(1);
    const progress = leader.status().progress?.get(2);
    assert.ok(progress !== undefined);
    assert.equal(progress.match, 2);
    assert.ok(progress.inflight <= 1, `inflight ${progress.inflight} > maxInflightMsgs 1`);
  });

  // Found by the simulator (first build: seed 52, 5 nodes; today, with the workaround below removed
  // from Cluster.compact: `npm run sim -- --seeds 1 --start 30 --nodes 3`): a node restarted from a
  // snapshot it had created itself came up with its old membership and threw `applyConfChange:
  // can't leave a non-joint config` while replaying the log (other seeds: split configurations and
  // lost liveness). etcd's MemoryStorage.CreateSnapshot makes InitialState() report the snapshot's
  // ConfState; fixed: ours does too now.
  it(
    'MemoryStorage.createSnapshot makes initialState() report the snapshot membership',
    () => {
      const storage = new MemoryStorage(conf([1, 2, 3]));
      storage.append([
        { index: 1, term: 1, type: 'normal', data: new Uint8Array(0) },
        { index: 2, term: 1, type: 'normal', data: new Uint8Array(0) },
      ]);
      const joint: ConfState = {
        voters: [1, 2, 4],
        votersOutgoing: [1, 2, 3],
        learners: [],
        learnersNext: [],
        autoLeave: false,
      };
      storage.createSnapshot(2, joint, new Uint8Array(0));
      assert.deepEqual(storage.initialState().confState, joint);
    },
  );
});
