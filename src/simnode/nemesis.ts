// The nemesis of the whole-node simulation: crashes (losing what was not fsynced), pauses
// (SIGSTOP), symmetric and one-way partitions, leader transfers and membership changes, each
// ending after a seeded time. `calm()` ends them all for the liveness and convergence phase.
import type { SimRandom } from '../sim/index.ts';
import { PERFECT_NETWORK } from '../sim/index.ts';
import type { SimCluster } from './cluster.ts';
import type { Profile } from './workload.ts';

/** Voters stay in [MIN_VOTERS, MAX_VOTERS] under membership changes. */
const MIN_VOTERS = 3;
const MAX_VOTERS = 5;

export class Nemesis {
  private readonly downUntil = new Map<number, number>();
  private readonly pausedUntil = new Map<number, number>();
  private healAtMs = -1;

  constructor(
    private readonly cluster: SimCluster,
    private readonly rnd: SimRandom,
    private readonly profile: Profile,
  ) {}

  private chancePpm(ppm: number): boolean {
    return ppm > 0 && this.rnd.int(1_000_000) < ppm;
  }

  private faultMs(): number {
    return this.rnd.range(100, this.profile.maxFaultMs);
  }

  /** One step: end faults whose time came, maybe start new ones. */
  act(): void {
    const now = this.cluster.now;
    this.endDue(now);
    const faulted = this.downUntil.size + this.pausedUntil.size;
    if (faulted < this.profile.maxDown && this.chancePpm(this.profile.crashPpm)) this.crash(now);
    if (faulted < this.profile.maxDown && this.chancePpm(this.profile.pausePpm)) this.pause(now);
    if (this.healAtMs < 0 && this.chancePpm(this.profile.partitionPpm)) this.partition(now);
    if (this.chancePpm(this.profile.transferPpm)) this.transfer();
    if (this.chancePpm(this.profile.memberPpm)) this.changeMembership();
  }

  private endDue(now: number): void {
    for (const [id, at] of [...this.downUntil]) {
      if (at > now) continue;
      this.downUntil.delete(id);
      const node = this.cluster.nodes.get(id);
      if (node !== undefined && !node.up && !node.removed) this.cluster.restart(id);
    }
    for (const [id, at] of [...this.pausedUntil]) {
      if (at > now) continue;
      this.pausedUntil.delete(id);
      if (this.cluster.nodes.get(id)?.paused === true) this.cluster.resume(id);
    }
    if (this.healAtMs >= 0 && this.healAtMs <= now) this.heal();
  }

  private running(): number[] {
    return this.cluster.serving().filter((n) => !n.paused).map((n) => n.id);
  }

  /** Usually a random node, sometimes the leader (the interesting victim). */
  private victim(): number | null {
    const running = this.running();
    if (running.length === 0) return null;
    const leader = this.cluster.leader();
    if (leader !== null && !leader.paused && this.rnd.chance(400)) return leader.id;
    return this.rnd.pick(running);
  }

  private crash(now: number): void {
    const id = this.victim();
    if (id === null) return;
    this.cluster.crash(id);
    this.downUntil.set(id, now + this.faultMs());
  }

  private pause(now: number): void {
    const id = this.victim();
    if (id === null) return;
    this.cluster.pause(id);
    this.pausedUntil.set(id, now + this.faultMs());
  }

  private partition(now: number): void {
    const ids = [...this.cluster.nodes.values()].filter((n) => !n.removed).map((n) => n.id);
    if (ids.length < 2) return;
    const network = this.cluster.network;
    const leader = this.cluster.leader()?.id ?? this.rnd.pick(ids);
    const others = ids.filter((id) => id !== leader);
    const kind = this.rnd.pick(['split', 'isolate', 'deaf', 'mute', 'bridge'] as const);
    switch (kind) {
      case 'split': {
        const shuffled = this.rnd.shuffle(ids.slice());
        const cut = this.rnd.range(1, shuffled.length - 1);
        network.split(shuffled.slice(0, cut), shuffled.slice(cut));
        break;
      }
      case 'isolate':
        network.split([leader], others);
        break;
      case 'deaf': // the leader hears nobody, but is heard
        for (const id of others) network.block(id, leader);
        break;
      case 'mute': // the leader is heard by nobody, but hears everyone
        for (const id of others) network.block(leader, id);
        break;
      case 'bridge': {
        // Two sides that only one node (the bridge) joins.
        const shuffled = this.rnd.shuffle(ids.slice());
        const [bridge, ...rest] = shuffled;
        const half = Math.ceil(rest.length / 2);
        if (rest.length >= 2) network.split(rest.slice(0, half), rest.slice(half));
        void bridge;
        break;
      }
    }
    this.healAtMs = now + this.faultMs();
    this.cluster.stats.partitions++;
    this.cluster.trace.record('partition', 0, `${kind} (leader n${leader}) until ${this.healAtMs}ms`);
  }

  private heal(): void {
    this.cluster.network.heal();
    this.healAtMs = -1;
    this.cluster.trace.record('heal', 0);
  }

  private transfer(): void {
    const leader = this.cluster.leader();
    if (leader === null) return;
    const voters = this.cluster.members().filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    this.cluster.transferLeader(leader.id, this.rnd.pick(voters));
  }

  private changeMembership(): void {
    const leader = this.cluster.leader();
    if (leader === null) return;
    const replica = this.cluster.replica(leader.id);
    if (replica === null) return;
    const voters = replica.confState.voters;
    if (replica.confState.votersOutgoing.length > 0) return;
    const add = voters.length < MIN_VOTERS + 1 || (voters.length < MAX_VOTERS && this.rnd.chance(500));
    if (add) {
      this.cluster.addMember(leader.id);
    } else {
      // Sometimes the leader removes itself (it steps down once the change applies).
      const target = this.rnd.chance(300) ? leader.id : this.rnd.pick(voters);
      this.cluster.removeMember(leader.id, target);
    }
  }

  /** Ends every fault: heals the network, makes it perfect, restarts and continues every node. */
  calm(): void {
    for (const id of this.pausedUntil.keys()) if (this.cluster.nodes.get(id)?.paused === true) this.cluster.resume(id);
    this.pausedUntil.clear();
    for (const id of this.downUntil.keys()) {
      const node = this.cluster.nodes.get(id);
      if (node !== undefined && !node.up && !node.removed) this.cluster.restart(id);
    }
    this.downUntil.clear();
    this.cluster.network.heal();
    this.cluster.network.faults = { ...PERFECT_NETWORK };
    this.healAtMs = -1;
    this.cluster.trace.record('heal', 0, 'calm: network healed and perfect, every node up');
  }
}
