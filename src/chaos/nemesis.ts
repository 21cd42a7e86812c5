// The nemesis: faults on a real cluster of `tessera start` processes. SIGKILL and restart,
// SIGSTOP/SIGCONT pauses longer than an election timeout, and network partitions through each
// node's fault-injection endpoint (POST /debug/faults on its metrics port). One fault at a time,
// then a quiet spell; every fault is healed at the end and the cluster must serve again.
import { request } from 'node:http';
import type { ProcessCluster } from './cluster.ts';
import type { EtcdClient } from './client.ts';
import type { Clock } from './history.ts';
import type { Random } from './random.ts';
import type { TimelineBand } from './checker/index.ts';
import { sleep } from './workloads/common.ts';

export type FaultKind = 'kill' | 'pause' | 'partition';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition'];

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

interface FaultBody {
  partition?: string[];
  direction?: 'both' | 'inbound' | 'outbound';
  heal?: boolean;
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
  /** Member ID (decimal string) of each node, for partition requests. */
  private memberIds: string[] = [];
  private partitioned = false;
  private round: FaultKind[] = [];

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly clients: EtcdClient[],
    private readonly faults: readonly FaultKind[],
    private readonly rng: Random,
    private readonly clock: Clock,
    private readonly log: (line: string) => void,
    private readonly timing: NemesisTiming = DEFAULT_TIMING,
  ) {}

  /** Learns every node's member ID (Maintenance.Status, or any response header). */
  async init(): Promise<void> {
    this.memberIds = await Promise.all(
      this.clients.map(async (client) => {
        try {
          return (await client.status()).memberId;
        } catch {
          return (await client.range('chaos/member-id', { serializable: true })).memberId;
        }
      }),
    );
    this.log(`nemesis: members ${this.memberIds.map((id, i) => `${this.cluster.nodes[i].name}=${id}`).join(' ')}`);
  }

  name(i: number): string {
    return this.cluster.nodes[i].name;
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
    const event: NemesisEvent = { kind, detail: '', startNs: this.clock.nowNs(), endNs: null };
    this.events.push(event);
    // Keep a fault for its whole duration even past the end of the run (short runs still see it).
    const hold = () => sleep(durationMs);
    switch (kind) {
      case 'kill': {
        const targets = await this.pickTargets();
        event.detail = `kill ${targets.map((i) => this.name(i)).join(',')}`;
        this.log(`nemesis: ${event.detail} (SIGKILL) for ${durationMs} ms`);
        await Promise.all(targets.map((i) => this.cluster.kill(i)));
        await hold();
        for (const i of targets) if (!this.cluster.isRunning(i)) this.cluster.launch(i);
        break;
      }
      case 'pause': {
        const targets = await this.pickTargets();
        event.detail = `pause ${targets.map((i) => this.name(i)).join(',')}`;
        this.log(`nemesis: ${event.detail} (SIGSTOP) for ${durationMs} ms`);
        for (const i of targets) this.cluster.pause(i);
        await hold();
        for (const i of targets) this.cluster.resume(i);
        break;
      }
      case 'partition': {
        const plan = await this.pickPartition();
        event.detail = plan.describe;
        this.log(`nemesis: partition ${plan.describe} for ${durationMs} ms`);
        this.partitioned = true;
        await this.applyPartition(plan.cuts);
        await hold();
        await this.healPartitions();
        break;
      }
    }
    event.endNs = this.clock.nowNs();
    this.log(`nemesis: healed ${event.detail}`);
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
      if (!this.cluster.isRunning(i) || this.cluster.nodes[i].paused) continue;
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
        if (cut.peers.length === 0 || !this.cluster.isRunning(i)) return;
        const body = { partition: cut.peers.map((j) => this.memberIds[j]), direction: cut.direction };
        await controlRequest(this.cluster.metricsUrl(i), 'POST', '/debug/faults', body);
      }),
    );
  }

  /**
   * Heals every running node. A refused connection means the process is still starting (it was
   * just relaunched) and so holds no faults; anything else is retried for a while.
   */
  private async healPartitions(): Promise<void> {
    const failures: string[] = [];
    await Promise.all(
      this.cluster.nodes.map(async (node, i) => {
        for (let attempt = 1; this.cluster.isRunning(i); attempt++) {
          try {
            await controlRequest(this.cluster.metricsUrl(i), 'POST', '/debug/faults', { heal: true });
            return;
          } catch (error) {
            const message = (error as Error).message;
            if (message.includes('ECONNREFUSED')) return;
            if (attempt === HEAL_ATTEMPTS) {
              failures.push(`${node.name}: ${message}`);
              return;
            }
            await sleep(500);
          }
        }
      }),
    );
    if (failures.length > 0) throw new Error(`heal failed: ${failures.join('; ')}`);
  }

  /** Heals everything: continues paused nodes, heals partitions, starts killed nodes. */
  async healAll(): Promise<void> {
    this.cluster.nodes.forEach((_, i) => this.cluster.resume(i));
    if (this.partitioned) await this.healPartitions();
    this.cluster.nodes.forEach((_, i) => {
      if (!this.cluster.isRunning(i)) this.cluster.launch(i);
    });
  }

  bands(): TimelineBand[] {
    return this.events.map((e) => ({ start: e.startNs, end: e.endNs ?? this.clock.nowNs(), label: e.detail }));
  }

  /** Faults injected, by kind. */
  counts(): Record<FaultKind, number> {
    const counts: Record<FaultKind, number> = { kill: 0, pause: 0, partition: 0 };
    for (const e of this.events) counts[e.kind]++;
    return counts;
  }
}
