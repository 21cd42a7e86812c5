// The nemesis: faults on a real cluster of `tessera start` processes. SIGKILL and restart,
// SIGSTOP/SIGCONT pauses longer than an election timeout, network partitions, slow and failing
// fsyncs and skewed clocks through each node's fault-injection endpoint (POST /debug/faults on its
// metrics port), member replacement through the Cluster API, and leader transfers. One fault at a
// time, then a quiet spell; every fault is healed at the end and the cluster must serve again.
import { request } from 'node:http';
import type { ProcessCluster } from './cluster.ts';
import type { EtcdClient } from './client.ts';
import type { Clock } from './history.ts';
import { MemberReplacer } from './membership.ts';
import type { Random } from './random.ts';
import type { TimelineBand } from './checker/index.ts';
import { sleep } from './workloads/common.ts';

export type FaultKind = 'kill' | 'pause' | 'partition' | 'disk' | 'member' | 'transfer' | 'clock';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition', 'disk', 'member', 'transfer', 'clock'];
/** Kinds injected through the nodes' fault-injection endpoint (`--experimental-fault-injection`). */
export const CONTROLLED_FAULTS: readonly FaultKind[] = ['partition', 'disk', 'clock'];

export interface NemesisEvent {
  kind: FaultKind;
  detail: string;
  startNs: number;
  endNs: number | null;
}

export interface NemesisTiming {
  /** Healthy time between faults, ms. */
  quietMs: [number, number];
  /** How long a fault lasts, ms (pauses: at least pauseMinMs). */
  faultMs: [number, number];
  /** A pause must outlast the election timeout (1 s by default) to force an election. */
  pauseMinMs: number;
}

export const DEFAULT_TIMING: NemesisTiming = { quietMs: [2_000, 4_000], faultMs: [3_000, 7_000], pauseMinMs: 1_500 };

/** Tries to heal one node before giving up. */
const HEAL_ATTEMPTS = 10;
/** Bound on one control request (the node answers at once unless it is paused or dead). */
const CONTROL_TIMEOUT_MS = 2_000;
/** How long a control request waits for a node that is still starting to listen. */
const CONTROL_STARTUP_WAIT_MS = 10_000;
/** Slow fsync: each commit of the target takes this much longer (ms, drawn per commit). */
const SLOW_FSYNC_MS: [number, number] = [50, 500];
/** A node whose next fsync fails must fail-stop within this (it commits on every write it sees). */
const FAIL_STOP_TIMEOUT_MS = 5_000;
/** The node's fatal log line (pino level 60) for a failed storage commit. */
const FATAL_STORAGE_LINE = /"level":60[^\n]*"fatal":"storage"/;
/** Clock rates of a skewed node (its timers run this many times as fast as real time). */
const CLOCK_RATES: readonly number[] = [0.25, 0.5, 2, 4];
/** Deadline of one MoveLeader call (the server gives up after two election timeouts + 1 s). */
const TRANSFER_TIMEOUT_MS = 5_000;
/** Pause between two leader transfers of one transfer fault, ms. */
const TRANSFER_GAP_MS: [number, number] = [300, 1_200];

interface FaultBody {
  partition?: string[];
  direction?: 'both' | 'inbound' | 'outbound';
  heal?: boolean;
  fsync?: { delayMs?: [number, number]; fail?: boolean };
  clock?: { rate: number };
}

/** A fault-injection request to `baseUrl` (http://127.0.0.1:port); resolves to the response body. */
export function controlRequest(baseUrl: string, method: 'GET' | 'POST', path: string, body?: FaultBody): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${baseUrl}${path}`,
      {
        method,
        timeout: CONTROL_TIMEOUT_MS,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve(text);
          else reject(new Error(`${method} ${path}: HTTP ${res.statusCode}: ${text}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${CONTROL_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export class Nemesis {
  readonly events: NemesisEvent[] = [];
  /** What the faults themselves showed wrong (a node that did not fail-stop, a membership that did not heal). */
  readonly problems: string[] = [];
  /** Member ID (decimal string) of each node's current member, for partitions and transfers. */
  private readonly memberIds: string[] = [];
  /** A fault went through a control endpoint: healing must undo it on every node. */
  private controlled = false;
  private round: FaultKind[] = [];
  private readonly replacer: MemberReplacer;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly clients: EtcdClient[],
    private readonly faults: readonly FaultKind[],
    private readonly rng: Random,
    private readonly clock: Clock,
    private readonly log: (line: string) => void,
    private readonly timing: NemesisTiming = DEFAULT_TIMING,
  ) {
    this.replacer = new MemberReplacer(cluster, clients, this.memberIds, log);
  }

  /** Learns every node's member ID (Maintenance.Status, or any response header). */
  async init(): Promise<void> {
    const ids = await Promise.all(
      this.clients.map(async (client) => {
        try {
          return (await client.status()).memberId;
        } catch {
          return (await client.range('chaos/member-id', { serializable: true })).memberId;
        }
      }),
    );
    this.memberIds.splice(0, this.memberIds.length, ...ids);
    this.log(`nemesis: members ${this.memberIds.map((id, i) => `${this.cluster.nodes[i].name}=${id}`).join(' ')}`);
  }

  name(i: number): string {
    return this.cluster.nodes[i].memberName;
  }

  /** Runs fault/quiet cycles until `running()` turns false (the current fault is healed first). */
  async run(running: () => boolean): Promise<void> {
    while (running()) {
      await this.sleepWhile(running, this.rng.range(...this.timing.quietMs));
      if (!running() || this.faults.length === 0) break;
      const kind = this.nextKind();
      const duration = Math.max(this.rng.range(...this.timing.faultMs), kind === 'pause' ? this.timing.pauseMinMs : 0);
      try {
        await this.inject(kind, duration);
      } catch (error) {
        this.log(`nemesis: ${kind} failed: ${(error as Error).message}`);
      }
    }
  }

  /** Each round injects every kind once, in a random order, so even short runs see every kind. */
  private nextKind(): FaultKind {
    if (this.round.length === 0) this.round = this.rng.shuffle([...this.faults]);
    return this.round.pop()!;
  }

  private async sleepWhile(running: () => boolean, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (running() && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
  }

  private async inject(kind: FaultKind, durationMs: number): Promise<void> {
    const event: NemesisEvent = { kind, detail: kind, startNs: this.clock.nowNs(), endNs: null };
    this.events.push(event);
    // Each fault is held for its whole duration even past the end of the run (short runs still see it).
    try {
      switch (kind) {
        case 'kill':
          return await this.injectKill(event, durationMs);
        case 'pause':
          return await this.injectPause(event, durationMs);
        case 'partition':
          return await this.injectPartition(event, durationMs);
        case 'disk':
          return await this.injectDisk(event, durationMs);
        case 'member':
          return await this.injectMember(event, durationMs);
        case 'transfer':
          return await this.injectTransfers(event, durationMs);
        case 'clock':
          return await this.injectClockSkew(event, durationMs);
      }
    } finally {
      event.endNs = this.clock.nowNs();
      this.log(`nemesis: healed ${event.detail}`);
    }
  }

  private async injectKill(event: NemesisEvent, durationMs: number): Promise<void> {
    const targets = await this.pickTargets();
    event.detail = `kill ${this.names(targets)}`;
    this.log(`nemesis: ${event.detail} (SIGKILL) for ${durationMs} ms`);
    await Promise.all(targets.map((i) => this.cluster.kill(i)));
    await sleep(durationMs);
    for (const i of targets) await this.relaunch(i);
  }

  private async injectPause(event: NemesisEvent, durationMs: number): Promise<void> {
    const targets = await this.pickTargets();
    event.detail = `pause ${this.names(targets)}`;
    this.log(`nemesis: ${event.detail} (SIGSTOP) for ${durationMs} ms`);
    for (const i of targets) this.cluster.pause(i);
    await sleep(durationMs);
    for (const i of targets) this.cluster.resume(i);
  }

  private async injectPartition(event: NemesisEvent, durationMs: number): Promise<void> {
    const plan = await this.pickPartition();
    event.detail = `partition ${plan.describe}`;
    this.log(`nemesis: ${event.detail} for ${durationMs} ms`);
    this.controlled = true;
    try {
      await this.applyPartition(plan.cuts);
      await sleep(durationMs);
    } finally {
      await this.healControl();
    }
  }

  /**
   * Half the time slow fsyncs (every commit of the targets 50-500 ms slower), half the time a
   * failing fsync: each target must then fail-stop (exit non-zero after a fatal log line, as etcd
   * panics); it is restarted on its data directory once the fault's time is over.
   */
  private async injectDisk(event: NemesisEvent, durationMs: number): Promise<void> {
    const targets = await this.pickTargets();
    this.controlled = true;
    if (this.rng.chance(0.5)) {
      const lo = this.rng.range(SLOW_FSYNC_MS[0], SLOW_FSYNC_MS[1] / 2);
      const hi = this.rng.range(lo, SLOW_FSYNC_MS[1]);
      event.detail = `disk slow fsync ${lo}-${hi} ms ${this.names(targets)}`;
      this.log(`nemesis: ${event.detail} for ${durationMs} ms`);
      try {
        await Promise.all(targets.map((i) => this.control(i, { fsync: { delayMs: [lo, hi] } })));
        await sleep(durationMs);
      } finally {
        await this.healControl(targets);
      }
      return;
    }
    event.detail = `disk failing fsync ${this.names(targets)}`;
    this.log(`nemesis: ${event.detail}, down for ${durationMs} ms`);
    const until = Date.now() + durationMs;
    try {
      await Promise.all(targets.map((i) => this.failFsync(i)));
      await sleep(Math.max(0, until - Date.now()));
    } finally {
      for (const i of targets) await this.relaunch(i);
    }
  }

  /**
   * Makes node i's next fsync fail and checks that it fail-stops: a fatal log line, then an exit
   * with a non-zero code within FAIL_STOP_TIMEOUT_MS. A node that stays up after its fatal line
   * is a problem (it would hold its ports and serve nothing); it is killed.
   */
  private async failFsync(i: number): Promise<void> {
    const name = this.name(i);
    const logOffset = this.cluster.log(i).length;
    const fatalLogged = () => FATAL_STORAGE_LINE.test(this.cluster.logSince(i, logOffset));
    this.cluster.expectExit(i);
    await this.control(i, { fsync: { fail: true } });
    let exit = await this.cluster.waitExit(i, FAIL_STOP_TIMEOUT_MS);
    if (exit === null && !fatalLogged()) {
      // No commit in that time (nothing to write): take the fault back, unless a commit is
      // failing right now, which the fatal line tells within a moment.
      await this.control(i, { heal: true }).catch(() => undefined);
      exit = await this.cluster.waitExit(i, 1_000);
      if (exit === null && !fatalLogged()) {
        this.cluster.expectExit(i, false);
        this.log(`nemesis: ${name} made no commit within ${FAIL_STOP_TIMEOUT_MS} ms; fault withdrawn`);
        return;
      }
      exit ??= await this.cluster.waitExit(i, FAIL_STOP_TIMEOUT_MS);
    }
    if (exit === null) {
      this.problems.push(`disk: ${name} logged its failed fsync but was still running ${FAIL_STOP_TIMEOUT_MS} ms later (no fail-stop)`);
      await this.cluster.kill(i);
      return;
    }
    this.log(`nemesis: ${name} fail-stopped (exit code ${exit.code}, signal ${exit.signal})`);
    if (exit.code === 0 || exit.code === null) {
      this.problems.push(`disk: ${name} did not fail-stop after a failed fsync (exit code ${exit.code}, signal ${exit.signal})`);
    }
    if (!fatalLogged()) this.problems.push(`disk: ${name} exited after a failed fsync without its fatal storage log line`);
  }

  /** Replaces one member (sometimes the leader) by a new one, one member short for the fault's time. */
  private async injectMember(event: NemesisEvent, durationMs: number): Promise<void> {
    const n = this.cluster.nodes.length;
    const target = this.rng.chance(0.5) ? ((await this.leader()) ?? this.rng.int(n)) : this.rng.int(n);
    event.detail = `member replace ${this.name(target)}`;
    this.log(`nemesis: ${event.detail} (MemberRemove, wipe, MemberAdd, join), ${n - 1} members for ${durationMs} ms`);
    event.detail = `member replace ${await this.replacer.replace(target, durationMs)}`;
  }

  /** Leader transfers (Maintenance.MoveLeader) to random followers, one after another, for the fault's time. */
  private async injectTransfers(event: NemesisEvent, durationMs: number): Promise<void> {
    const until = Date.now() + durationMs;
    const moves: string[] = [];
    this.log(`nemesis: leader transfers for ${durationMs} ms`);
    while (Date.now() < until) {
      const leader = await this.leader();
      const followers = this.cluster.nodes.map((_, i) => i).filter((i) => i !== leader && this.cluster.isAlive(i) && !this.cluster.nodes[i].paused);
      if (leader === null || followers.length === 0) {
        await sleep(200);
        continue;
      }
      const target = this.rng.pick(followers);
      const move = `${this.name(leader)}->${this.name(target)}`;
      try {
        await this.clients[leader].moveLeader(this.memberIds[target], TRANSFER_TIMEOUT_MS);
        moves.push(move);
      } catch (error) {
        moves.push(`${move}(failed)`);
        this.log(`nemesis: transfer ${move} failed: ${(error as Error).message}`);
      }
      event.detail = `transfer ${moves.join(' ')}`;
      await sleep(this.rng.range(...TRANSFER_GAP_MS));
    }
    if (moves.length === 0) event.detail = 'transfer (no leader to move)';
  }

  /** The targets' timers (Raft ticks, lease clock, request deadlines) run slow or fast for the fault's time. */
  private async injectClockSkew(event: NemesisEvent, durationMs: number): Promise<void> {
    const targets = await this.pickTargets();
    const rates = targets.map(() => this.rng.pick(CLOCK_RATES));
    event.detail = `clock ${targets.map((i, k) => `${this.name(i)}x${rates[k]}`).join(',')}`;
    this.log(`nemesis: ${event.detail} for ${durationMs} ms`);
    this.controlled = true;
    try {
      await Promise.all(targets.map((i, k) => this.control(i, { clock: { rate: rates[k] } })));
      await sleep(durationMs);
    } finally {
      await this.healControl(targets);
    }
  }

  private names(targets: number[]): string {
    return targets.map((i) => this.name(i)).join(',');
  }

  /**
   * One control request to node i. A node that was just restarted refuses connections until it
   * listens (a few seconds): retried meanwhile, so a fault is not lost on it.
   */
  private async control(i: number, body: FaultBody): Promise<string> {
    const until = Date.now() + CONTROL_STARTUP_WAIT_MS;
    for (;;) {
      try {
        return await controlRequest(this.cluster.metricsUrl(i), 'POST', '/debug/faults', body);
      } catch (error) {
        const refused = (error as Error).message.includes('ECONNREFUSED');
        if (!refused || !this.cluster.isAlive(i) || Date.now() >= until) throw error;
        await sleep(200);
      }
    }
  }

  /** Starts node i again on its data directory unless it runs (it was killed, or it fail-stopped). */
  private async relaunch(i: number): Promise<void> {
    if (this.cluster.isAlive(i) || this.replacer.isPending(i)) return;
    await this.cluster.kill(i); // forget an exited process
    this.cluster.launch(i);
  }

  /** One random node, the leader, or a majority (the cluster is then unavailable for a while). */
  private async pickTargets(): Promise<number[]> {
    const n = this.cluster.nodes.length;
    const roll = this.rng.int(10);
    if (roll < 4) return [this.rng.int(n)];
    if (roll < 8) return [(await this.leader()) ?? this.rng.int(n)];
    return this.rng.shuffle([...Array(n).keys()]).slice(0, Math.floor(n / 2) + 1);
  }

  /** The leader's node index as the running nodes report it, or null. */
  async leader(): Promise<number | null> {
    for (let i = 0; i < this.clients.length; i++) {
      if (!this.cluster.isAlive(i) || this.cluster.nodes[i].paused) continue;
      try {
        const status = await this.clients[i].status(500);
        const index = this.memberIds.indexOf(status.leader);
        if (index >= 0) return index;
      } catch {
        // unreachable or no Status: ask the next node
      }
    }
    return null;
  }

  /**
   * A partition plan: for each node, the peers it drops and in which direction. Shapes: a random
   * minority/majority split, the leader isolated, a bridge (two sides that only one node joins),
   * and the leader deaf to its followers (inbound only).
   */
  private async pickPartition(): Promise<{ describe: string; cuts: Map<number, { peers: number[]; direction: 'both' | 'inbound' }> }> {
    const n = this.cluster.nodes.length;
    const all = [...Array(n).keys()];
    const cuts = new Map<number, { peers: number[]; direction: 'both' | 'inbound' }>();
    const split = (sides: number[][]) => {
      for (const side of sides) {
        for (const i of side) cuts.set(i, { peers: all.filter((j) => !side.includes(j)), direction: 'both' });
      }
    };
    const group = (side: number[]) => `{${side.map((i) => this.name(i)).join(',')}}`;
    const shape = this.rng.pick(['halves', 'isolate-leader', 'bridge', 'leader-inbound'] as const);
    if (shape === 'halves') {
      const shuffled = this.rng.shuffle(all.slice());
      const minority = shuffled.slice(0, Math.floor((n - 1) / 2) || 1);
      const majority = shuffled.filter((i) => !minority.includes(i));
      split([minority, majority]);
      return { describe: `halves ${group(minority)} | ${group(majority)}`, cuts };
    }
    const leader = (await this.leader()) ?? this.rng.int(n);
    if (shape === 'isolate-leader') {
      split([[leader], all.filter((i) => i !== leader)]);
      return { describe: `isolated leader ${group([leader])} | ${group(all.filter((i) => i !== leader))}`, cuts };
    }
    if (shape === 'leader-inbound') {
      cuts.set(leader, { peers: all.filter((i) => i !== leader), direction: 'inbound' });
      return { describe: `leader ${group([leader])} hears no one (inbound cut)`, cuts };
    }
    // bridge: the bridge node talks to everyone; the two sides do not talk to each other.
    const shuffled = this.rng.shuffle(all.slice());
    const bridge = shuffled[0];
    const rest = shuffled.slice(1);
    const left = rest.slice(0, Math.ceil(rest.length / 2));
    const right = rest.slice(Math.ceil(rest.length / 2));
    for (const i of left) cuts.set(i, { peers: right, direction: 'both' });
    for (const i of right) cuts.set(i, { peers: left, direction: 'both' });
    return { describe: `bridge ${group(left)} - ${group([bridge])} - ${group(right)}`, cuts };
  }

  private async applyPartition(cuts: Map<number, { peers: number[]; direction: 'both' | 'inbound' }>): Promise<void> {
    await Promise.all(
      [...cuts].map(async ([i, cut]) => {
        if (cut.peers.length === 0 || !this.cluster.isAlive(i)) return;
        await this.control(i, { partition: cut.peers.map((j) => this.memberIds[j]), direction: cut.direction });
      }),
    );
  }

  /**
   * Undoes every control fault (partitions, delays, fsync faults, clock skew) on the given nodes
   * (default all). A refused connection means the process is still starting (it was just
   * relaunched) and so holds no faults; anything else is retried for a while.
   */
  private async healControl(nodes: number[] = this.cluster.nodes.map((_, i) => i)): Promise<void> {
    const failures: string[] = [];
    await Promise.all(
      nodes.map(async (i) => {
        for (let attempt = 1; this.cluster.isAlive(i); attempt++) {
          try {
            // Not control(): a node still starting holds no faults, there is nothing to wait for.
            await controlRequest(this.cluster.metricsUrl(i), 'POST', '/debug/faults', { heal: true });
            return;
          } catch (error) {
            const message = (error as Error).message;
            if (message.includes('ECONNREFUSED')) return;
            if (attempt === HEAL_ATTEMPTS) {
              failures.push(`${this.name(i)}: ${message}`);
              return;
            }
            await sleep(500);
          }
        }
      }),
    );
    if (failures.length > 0) throw new Error(`heal failed: ${failures.join('; ')}`);
  }

  /**
   * Heals everything: continues paused nodes, undoes control faults, starts stopped nodes (killed,
   * fail-stopped), and finishes a member replacement that was cut short, so the cluster has all
   * its members again.
   */
  async healAll(): Promise<void> {
    this.cluster.nodes.forEach((_, i) => this.cluster.resume(i));
    if (this.controlled) await this.healControl();
    for (let i = 0; i < this.cluster.nodes.length; i++) await this.relaunch(i);
    await this.replacer.completePending();
  }

  /** After healing: the cluster lists exactly one voting member per node, the ones the nemesis knows. */
  async checkMembership(): Promise<string[]> {
    let last = '';
    for (let attempt = 0; attempt < this.clients.length * 2; attempt++) {
      try {
        const members = await this.clients[attempt % this.clients.length].memberList(5_000);
        const listed = members.map((m) => `${m.id}${m.isLearner ? '(learner)' : ''}`).sort();
        const expected = [...this.memberIds].sort();
        if (JSON.stringify(listed) === JSON.stringify(expected)) return [];
        return [`membership: the cluster lists [${listed.join(', ')}], expected the ${expected.length} voters [${expected.join(', ')}]`];
      } catch (error) {
        last = (error as Error).message;
        await sleep(500);
      }
    }
    return [`membership: no member answered MemberList: ${last}`];
  }

  bands(): TimelineBand[] {
    return this.events.map((e) => ({ start: e.startNs, end: e.endNs ?? this.clock.nowNs(), label: e.detail }));
  }

  /** Faults injected, by kind. */
  counts(): Record<FaultKind, number> {
    const counts = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
    for (const e of this.events) counts[e.kind]++;
    return counts;
  }
}
