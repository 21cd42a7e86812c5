// What happens to the simulated cluster: the per-seed profile (swarm testing: each seed turns
// different knobs), the clients (writes, reads, transfers, membership changes, compaction) and
// the nemesis (crashes, partitions).
import type { ConfChange, ConfChangeSingle, ConfState, NodeId, RaftConfig } from '../raft/index.ts';
import { isJoint } from './cluster.ts';
import type { Cluster, SimNode } from './cluster.ts';
import { PERFECT_NETWORK } from './network.ts';
import type { NetworkFaults } from './network.ts';
import type { SimRandom } from './random.ts';

/** Per-step chances (permille) of each client action and fault, and their bounds. */
export interface Profile {
  network: NetworkFaults;
  proposePermille: number;
  /** Chance a proposal goes to the leader rather than to a random node (which forwards it or drops it). */
  proposeToLeaderPermille: number;
  maxProposalBatch: number;
  maxPaddingBytes: number;
  readPermille: number;
  transferPermille: number;
  campaignPermille: number;
  confChangePermille: number;
  compactPermille: number;
  /** Entries kept behind a snapshot when compacting (small = followers often need snapshots). */
  maxCompactionLag: number;
  crashPermille: number;
  /** At most this many nodes are down at once (may be a majority: the cluster then waits). */
  maxDown: number;
  maxDownTicks: number;
  partitionPermille: number;
  maxPartitionTicks: number;
  /** Chance per node per tick that its clock skips a tick or runs a double tick. */
  tickSkewPermille: number;
}

/** Membership bounds: voters stay in [MIN_VOTERS, MAX_VOTERS], learners at most MAX_LEARNERS. */
export const MIN_VOTERS = 3;
export const MAX_VOTERS = 7;
export const MAX_LEARNERS = 2;

export function randomProfile(rnd: SimRandom, size: number): Profile {
  const calm = rnd.chance(150);
  const network: NetworkFaults = calm
    ? {
        dropPermille: 0,
        duplicatePermille: 0,
        delayPermille: rnd.pick([0, 50]),
        maxDelayTicks: 2,
        reorderPermille: 0,
      }
    : {
        dropPermille: rnd.pick([0, 10, 30, 80, 150]),
        duplicatePermille: rnd.pick([0, 10, 50]),
        delayPermille: rnd.pick([0, 100, 300, 600]),
        maxDelayTicks: rnd.pick([1, 3, 8, 20]),
        reorderPermille: rnd.pick([0, 0, 10, 50]),
      };
  return {
    network,
    proposePermille: rnd.pick([200, 500, 800]),
    proposeToLeaderPermille: rnd.pick([500, 800, 1000]),
    maxProposalBatch: rnd.pick([1, 3, 8]),
    maxPaddingBytes: rnd.pick([0, 16, 200]),
    readPermille: rnd.pick([50, 150, 300]),
    transferPermille: rnd.pick([0, 5, 20]),
    campaignPermille: rnd.pick([0, 2, 10]),
    confChangePermille: rnd.pick([0, 10, 30]),
    compactPermille: rnd.pick([5, 30, 100]),
    maxCompactionLag: rnd.pick([0, 3, 20]),
    crashPermille: calm ? 0 : rnd.pick([0, 5, 15, 30]),
    maxDown: rnd.chance(200) ? Math.floor(size / 2) + 1 : Math.floor((size - 1) / 2),
    maxDownTicks: rnd.pick([10, 40, 150]),
    partitionPermille: calm ? 0 : rnd.pick([0, 5, 15, 40]),
    maxPartitionTicks: rnd.pick([10, 50, 150]),
    tickSkewPermille: rnd.pick([0, 20, 100]),
  };
}

/** Raft knobs that change code paths: flow control, message sizes, PreVote/CheckQuorum, forwarding. */
export function randomRaftOverrides(rnd: SimRandom): Partial<RaftConfig> {
  const maxSizePerMsg = rnd.pick([64, 1024, 1024 * 1024]);
  return {
    electionTicks: 10,
    heartbeatTicks: rnd.pick([1, 1, 2, 3]),
    preVote: rnd.chance(700),
    checkQuorum: rnd.chance(700),
    // Lease-based reads are only as safe as the clocks; the simulator skews ticks, so it checks `safe` reads.
    readOnlyOption: 'safe',
    maxSizePerMsg,
    maxInflightMsgs: rnd.pick([1, 4, 256]),
    maxInflightBytes: rnd.chance(300) ? maxSizePerMsg * rnd.pick([1, 4]) : 0,
    maxUncommittedEntriesSize: rnd.pick([0, 2048, 1024 * 1024]),
    maxCommittedSizePerReady: rnd.pick([0, 128, 8 * 1024 * 1024]),
    disableProposalForwarding: rnd.chance(100),
    leaderDurableNotices: rnd.chance(500),
  };
}

const EMPTY = new Uint8Array(0);

/** Drives clients and faults against a cluster, one step at a time, all decisions from the seed. */
export class Workload {
  private healAt = -1;

  constructor(
    private readonly cluster: Cluster,
    private readonly rnd: SimRandom,
    readonly profile: Profile,
  ) {}

  /** One step's worth of faults and client requests (before the tick). */
  act(): void {
    this.nemesis();
    this.clients();
  }

  /** Ends every fault: heal the network, make it perfect, restart every member that is down. */
  calm(): void {
    const cluster = this.cluster;
    cluster.network.heal();
    this.healAt = -1;
    cluster.network.faults = { ...PERFECT_NETWORK };
    for (const node of cluster.nodes.values()) {
      if (node.shutdownAt >= 0) cluster.shutdown(node);
      else if (!node.up && !node.removed) cluster.restart(node);
    }
  }

  private nemesis(): void {
    const cluster = this.cluster;
    if (this.healAt >= 0 && cluster.now >= this.healAt) {
      cluster.network.heal();
      this.healAt = -1;
      this.traceFault('heal', '');
    } else if (this.healAt < 0 && this.rnd.chance(this.profile.partitionPermille)) {
      this.partition();
    }
    if (this.rnd.chance(this.profile.crashPermille)) this.crashOne();
  }

  private traceFault(kind: 'heal' | 'partition', note: string): void {
    this.cluster.recordEvent(kind, note);
  }

  private partition(): void {
    const ids = [...this.cluster.nodes.values()].filter((node) => !node.removed).map((node) => node.id);
    if (ids.length < 2) return;
    const network = this.cluster.network;
    const leader = this.cluster.leader();
    const kind = this.rnd.int(4);
    let note: string;
    if (kind === 0 || (kind === 1 && leader === null)) {
      this.rnd.shuffle(ids);
      const cut = this.rnd.range(1, ids.length - 1);
      const left = ids.slice(0, cut);
      const right = ids.slice(cut);
      network.split(left, right);
      note = `split ${left.join(',')} | ${right.join(',')}`;
    } else if (kind === 1 && leader !== null) {
      network.split(
        [leader.id],
        ids.filter((id) => id !== leader.id),
      );
      note = `isolate leader n${leader.id}`;
    } else if (kind === 2) {
      const target = this.rnd.pick(ids);
      const outgoing = this.rnd.chance(500);
      for (const other of ids) {
        if (other === target) continue;
        if (outgoing) network.block(target, other);
        else network.block(other, target);
      }
      note = `n${target} ${outgoing ? 'cannot send' : 'cannot receive'}`;
    } else {
      const cut: string[] = [];
      for (const from of ids) {
        for (const to of ids) {
          if (from !== to && this.rnd.chance(300)) {
            network.block(from, to);
            cut.push(`${from}->${to}`);
          }
        }
      }
      note = `one-way cuts ${cut.join(' ')}`;
    }
    this.healAt = this.cluster.now + this.rnd.range(5, this.profile.maxPartitionTicks);
    this.cluster.stats.partitions++;
    this.traceFault('partition', note);
  }

  private crashOne(): void {
    const live = [...this.cluster.nodes.values()].filter((node) => !node.removed && node.shutdownAt < 0);
    const down = live.filter((node) => !node.up).length;
    if (down >= this.profile.maxDown) return;
    const up = live.filter((node) => node.up);
    if (up.length === 0) return;
    const leader = this.cluster.leader();
    const victim = leader !== null && this.rnd.chance(300) ? leader : this.rnd.pick(up);
    this.cluster.crash(victim, this.rnd.range(1, this.profile.maxDownTicks));
  }

  private clients(): void {
    const cluster = this.cluster;
    const up = cluster.upNodes();
    if (up.length === 0) return;
    const profile = this.profile;
    const leader = cluster.leader();
    // Clients find "a leader", not necessarily the current one: a deposed leader that has not
    // noticed yet takes writes too, which grows the divergent log tails Raft must repair.
    const leaders = up.filter((node) => node.role === 'leader');
    if (this.rnd.chance(profile.proposePermille)) {
      const target =
        leaders.length > 0 && this.rnd.chance(profile.proposeToLeaderPermille)
          ? this.rnd.pick(leaders)
          : this.rnd.pick(up);
      cluster.propose(target, this.rnd.range(1, profile.maxProposalBatch), profile.maxPaddingBytes);
    }
    if (this.rnd.chance(profile.readPermille)) {
      cluster.read(leaders.length > 0 && this.rnd.chance(500) ? this.rnd.pick(leaders) : this.rnd.pick(up));
    }
    if (leader !== null && this.rnd.chance(profile.transferPermille)) {
      const voters = leader.confState.voters.filter((id) => id !== leader.id);
      if (voters.length > 0)
        cluster.transferLeader(this.rnd.chance(800) ? leader : this.rnd.pick(up), this.rnd.pick(voters));
    }
    if (this.rnd.chance(profile.campaignPermille)) cluster.campaign(this.rnd.pick(up));
    if (this.rnd.chance(profile.compactPermille))
      cluster.compact(this.rnd.pick(up), this.rnd.range(0, profile.maxCompactionLag));
    if (leader !== null && this.rnd.chance(profile.confChangePermille)) this.changeMembership(leader);
  }

  private changeMembership(leader: SimNode): void {
    const conf = leader.confState;
    if (isJoint(conf)) {
      if (!conf.autoLeave)
        this.cluster.proposeConfChange(leader, { transition: 'auto', changes: [], context: EMPTY });
      return;
    }
    const change = this.planChange(conf, leader.id);
    if (change !== null) this.cluster.proposeConfChange(leader, change);
  }

  /** A random membership change that keeps the configuration within bounds, or null. */
  private planChange(conf: ConfState, leaderId: NodeId): ConfChange | null {
    const voters = conf.voters;
    const learners = conf.learners;
    const victim = (): NodeId => (this.rnd.chance(300) ? leaderId : this.rnd.pick(voters));
    const simple = (single: ConfChangeSingle): ConfChange => ({
      transition: 'auto',
      changes: [single],
      context: EMPTY,
    });
    switch (this.rnd.int(7)) {
      case 0:
        return voters.length < MAX_VOTERS
          ? simple({ type: 'addNode', nodeId: this.cluster.nextNodeId++ })
          : null;
      case 1:
        return learners.length < MAX_LEARNERS
          ? simple({ type: 'addLearner', nodeId: this.cluster.nextNodeId++ })
          : null;
      case 2:
        return learners.length > 0 && voters.length < MAX_VOTERS
          ? simple({ type: 'addNode', nodeId: this.rnd.pick(learners) })
          : null;
      case 3:
        return voters.length > MIN_VOTERS ? simple({ type: 'removeNode', nodeId: victim() }) : null;
      case 4:
        return learners.length > 0 ? simple({ type: 'removeNode', nodeId: this.rnd.pick(learners) }) : null;
      case 5: {
        // Replace a voter (possibly the leader) through a joint configuration.
        const changes: ConfChangeSingle[] = [
          { type: 'addNode', nodeId: this.cluster.nextNodeId++ },
          { type: 'removeNode', nodeId: victim() },
        ];
        return {
          transition: this.rnd.pick(['auto', 'implicit', 'explicit'] as const),
          changes,
          context: EMPTY,
        };
      }
      default:
        return this.planJoint(conf, victim);
    }
  }

  /** Several changes at once (joint consensus), including demoting a voter to learner. */
  private planJoint(conf: ConfState, victim: () => NodeId): ConfChange | null {
    const voters = new Set(conf.voters);
    const learners = new Set(conf.learners);
    const changes: ConfChangeSingle[] = [];
    const touched = new Set<NodeId>();
    const count = this.rnd.range(2, 3);
    for (let i = 0; i < count; i++) {
      const kind = this.rnd.int(5);
      if (kind === 0) {
        const id = this.cluster.nextNodeId++;
        changes.push({ type: 'addNode', nodeId: id });
        voters.add(id);
        touched.add(id);
      } else if (kind === 1) {
        const id = this.cluster.nextNodeId++;
        changes.push({ type: 'addLearner', nodeId: id });
        learners.add(id);
        touched.add(id);
      } else {
        const id = kind === 4 && learners.size > 0 ? this.rnd.pick([...learners]) : victim();
        if (touched.has(id)) continue;
        touched.add(id);
        if (kind === 2 && voters.has(id)) {
          changes.push({ type: 'addLearner', nodeId: id });
          voters.delete(id);
          learners.add(id);
        } else {
          changes.push({ type: 'removeNode', nodeId: id });
          voters.delete(id);
          learners.delete(id);
        }
      }
    }
    if (
      changes.length === 0 ||
      voters.size < MIN_VOTERS ||
      voters.size > MAX_VOTERS ||
      learners.size > MAX_LEARNERS
    )
      return null;
    return { transition: this.rnd.pick(['auto', 'implicit', 'explicit'] as const), changes, context: EMPTY };
  }
}
