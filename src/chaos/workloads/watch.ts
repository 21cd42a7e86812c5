// Watch workload: clients put unique values (and read them back) on a few keys while one watcher
// per node follows the key prefix, reconnecting (to the next node) from its last revision whenever
// its stream breaks. Checks, against a full replay of the prefix's history from every node after
// healing: each watcher saw every committed event exactly once, in revision order, with the right
// key and value; every acknowledged put is in the history at the revision its response named; the
// replays agree across nodes; and the puts and reads are linearizable (register model).
import { checkLinearizable, htmlTimeline, registerModel, textReport } from '../checker/index.ts';
import type { RegisterInput, RegisterOutput, TimelineBand } from '../checker/index.ts';
import { prefixEnd } from '../client.ts';
import type { EtcdClient, WatchEventRecord, WatchStream } from '../client.ts';
import { History } from '../history.ts';
import type { Random } from '../random.ts';
import { ClientSlot, Processes, WorkloadUnsupported, combine, sleep, statusLine } from './common.ts';
import type { Workload, WorkloadContext, WorkloadResult } from './common.ts';

export interface WatchOptions {
  workers: number;
  keys?: number;
}

interface SeenEvent {
  revision: number;
  key: string;
  value: string;
  type: 'PUT' | 'DELETE';
}

/** Bound on events one watcher keeps (a 60 s run commits a few thousand). */
const MAX_WATCHER_EVENTS = 1_000_000;
/** How long a watcher may take to catch up after healing. */
const CATCH_UP_MS = 30_000;

/** One watcher: follows the prefix from `from`, reconnecting round-robin over the nodes. */
class Watcher {
  readonly events: SeenEvent[] = [];
  lastRevision: number;
  reconnects = 0;
  readonly breaks: string[] = [];
  private stream: WatchStream | null = null;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly clients: EtcdClient[],
    private node: number,
    private readonly prefix: string,
    from: number,
  ) {
    this.lastRevision = from - 1;
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const ended = new Promise<string>((resolve) => {
        this.stream = this.clients[this.node].watch(this.prefix, prefixEnd(this.prefix), this.lastRevision + 1, {
          onCreated: () => {},
          onEvents: (events) => this.record(events),
          onEnd: resolve,
        });
      });
      const reason = await ended;
      if (this.stopped) break;
      if (this.breaks.length < 100) this.breaks.push(reason);
      this.reconnects++;
      this.node = (this.node + 1) % this.clients.length;
      await sleep(100);
    }
  }

  private record(events: WatchEventRecord[]): void {
    for (const e of events) {
      if (this.events.length >= MAX_WATCHER_EVENTS) throw new Error(`watcher holds more than ${MAX_WATCHER_EVENTS} events`);
      this.events.push({ revision: e.kv.modRevision, key: e.kv.key, value: e.kv.value, type: e.type });
      this.lastRevision = Math.max(this.lastRevision, e.kv.modRevision);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.cancel();
    await this.done;
  }
}

export class WatchWorkload implements Workload {
  readonly name = 'watch';
  readonly history: History<RegisterInput, RegisterOutput>;
  private readonly processes: Processes;
  private readonly keyCount: number;
  private readonly keyPrefix: string;
  private startRevision = 0;
  private watchers: Watcher[] = [];
  private nextValue = 0;
  /** Revision named by each acknowledged put's response. */
  private readonly putRevision = new Map<number, number>();

  constructor(ctx: WorkloadContext, options: WatchOptions) {
    this.history = new History(ctx.clock);
    this.processes = new Processes(options.workers);
    this.keyCount = options.keys ?? 8;
    this.keyPrefix = `${ctx.prefix}watch/`;
  }

  async setup(ctx: WorkloadContext): Promise<void> {
    const client = ctx.patientClients[0];
    let stream: WatchStream | null = null;
    let timer: NodeJS.Timeout | undefined;
    const probe = await new Promise<string | null>((resolve) => {
      stream = client.watch(this.keyPrefix, prefixEnd(this.keyPrefix), 0, {
        onCreated: () => resolve(null),
        onEvents: () => {},
        onEnd: (reason) => resolve(reason),
      });
      timer = setTimeout(() => resolve('no answer within 5 s'), 5_000);
    });
    clearTimeout(timer);
    (stream as WatchStream | null)?.cancel();
    if (probe !== null) throw new WorkloadUnsupported(`watch: cannot open a watch stream (${probe})`);
    this.startRevision = (await client.range(this.keyPrefix)).revision + 1;
    this.watchers = ctx.clients.map((_, i) => new Watcher(ctx.patientClients, i, this.keyPrefix, this.startRevision));
    ctx.log(`watch: ${this.watchers.length} watchers from revision ${this.startRevision}`);
  }

  async worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void> {
    const slot = new ClientSlot(ctx, index, this.processes);
    while (ctx.running()) {
      const key = `${this.keyPrefix}k${rng.int(this.keyCount)}`;
      if (rng.chance(0.25)) {
        await slot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ value: r.kvs[0]?.value ?? null }));
        continue;
      }
      const value = `v${this.nextValue++}`;
      const outcome = await slot.run(this.history, { f: 'write', key, value }, (c) => c.put(key, value), () => ({}));
      if ('result' in outcome) this.putRevision.set(outcome.op.id, outcome.result);
    }
  }

  /** The prefix's full event history replayed by a fresh watch on `client`, up to `lastRevision`. */
  private async replay(client: EtcdClient, lastRevision: number): Promise<SeenEvent[] | string> {
    const events: SeenEvent[] = [];
    let stream: WatchStream | null = null;
    const outcome = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(`replay did not reach revision ${lastRevision} within ${CATCH_UP_MS} ms`), CATCH_UP_MS);
      stream = client.watch(this.keyPrefix, prefixEnd(this.keyPrefix), this.startRevision, {
        onCreated: () => {
          if (lastRevision < this.startRevision) resolve(null);
        },
        onEvents: (batch) => {
          for (const e of batch) events.push({ revision: e.kv.modRevision, key: e.kv.key, value: e.kv.value, type: e.type });
          if (events.length > 0 && events[events.length - 1].revision >= lastRevision) {
            clearTimeout(timer);
            resolve(null);
          }
        },
        onEnd: (reason) => resolve(`replay stream ended: ${reason}`),
      });
    });
    (stream as WatchStream | null)?.cancel();
    return outcome ?? events;
  }

  async finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult> {
    const problems: string[] = [];
    let lost = 0;
    let duplicated = 0;
    const current = await ctx.patientClients[0].range(this.keyPrefix, { rangeEnd: prefixEnd(this.keyPrefix) });
    const lastRevision = Math.max(0, ...current.kvs.map((kv) => kv.modRevision));
    const replays = await Promise.all(ctx.patientClients.map((c) => this.replay(c, lastRevision)));
    const until = Date.now() + CATCH_UP_MS;
    while (Date.now() < until && this.watchers.some((w) => w.lastRevision < lastRevision)) await sleep(100);
    await Promise.all(this.watchers.map((w) => w.stop()));
    const truth = replays.find((r): r is SeenEvent[] => typeof r !== 'string');
    replays.forEach((r, i) => {
      if (typeof r === 'string') problems.push(`watch: node ${i + 1}: ${r}`);
      else if (truth !== undefined && JSON.stringify(r) !== JSON.stringify(truth)) problems.push(`watch: node ${i + 1} replays a different history than the others`);
    });
    if (truth === undefined) {
      problems.push('watch: no node could replay the history');
    } else {
      lost += this.checkAcked(truth, problems);
      this.watchers.forEach((w, i) => {
        const result = this.checkWatcher(w, i, truth, problems);
        lost += result.missed;
        duplicated += result.duplicated;
      });
    }
    const check = checkLinearizable(registerModel, this.history.operations(), { timeoutMs: ctx.checkTimeoutMs });
    const watcherLines = this.watchers.map(
      (w, i) => `watcher ${i + 1}: ${w.events.length} events up to revision ${w.lastRevision}, ${w.reconnects} reconnects${w.breaks.length > 0 ? ` (first break: ${w.breaks[0]})` : ''}`,
    );
    return {
      ops: this.history.ops.length,
      linearizable: combine(check, problems.filter((p) => p.includes('out of order') || p.includes('differs')).length),
      lost,
      duplicated,
      problems,
      report: [
        `watch: ${statusLine(this.history)}; history of ${truth?.length ?? '?'} events from revision ${this.startRevision} to ${lastRevision}`,
        ...watcherLines,
        textReport(registerModel, check),
        ...problems.map((p) => `problem: ${p}`),
      ].join('\n'),
      html: htmlTimeline(registerModel, check, bands),
      history: this.history.toJsonLines(),
      files: { 'watch-history.jsonl': (truth ?? []).map((e) => JSON.stringify(e)).join('\n') + '\n' },
    };
  }

  /** Every acknowledged put must be in the history, at the revision its response named. */
  private checkAcked(truth: SeenEvent[], problems: string[]): number {
    const byRevision = new Map(truth.map((e) => [`${e.revision}/${e.key}`, e]));
    const byValue = new Map(truth.map((e) => [`${e.key}=${e.value}`, e]));
    let lost = 0;
    for (const op of this.history.ops) {
      const revision = this.putRevision.get(op.id);
      if (op.input.f !== 'write' || op.status !== 'ok' || revision === undefined) continue;
      const event = byRevision.get(`${revision}/${op.input.key}`);
      if (event === undefined || event.value !== op.input.value) {
        lost++;
        const elsewhere = byValue.get(`${op.input.key}=${op.input.value}`);
        const there = event === undefined ? 'nothing' : `${event.key}=${event.value}`;
        problems.push(
          `watch: acknowledged put ${op.input.key}=${op.input.value} (op ${op.id}, node ${op.node + 1}) answered revision ${revision}, ` +
            `where the history has ${there}; ${elsewhere ? `the value is at revision ${elsewhere.revision}` : 'the value is nowhere in the history (lost)'}`,
        );
      }
    }
    return lost;
  }

  /** In order, nothing twice, nothing missing, nothing different. */
  private checkWatcher(w: Watcher, index: number, truth: SeenEvent[], problems: string[]): { missed: number; duplicated: number } {
    const name = `watcher ${index + 1}`;
    const seen = new Map<string, SeenEvent>();
    let duplicated = 0;
    let previous = 0;
    for (const e of w.events) {
      const id = `${e.revision}/${e.key}`;
      if (seen.has(id)) {
        duplicated++;
        if (duplicated <= 5) problems.push(`watch: ${name} got revision ${e.revision} (${e.key}) twice`);
        continue;
      }
      if (e.revision < previous) problems.push(`watch: ${name} got revision ${e.revision} after ${previous} (out of order)`);
      previous = Math.max(previous, e.revision);
      seen.set(id, e);
    }
    let missed = 0;
    for (const e of truth) {
      const got = seen.get(`${e.revision}/${e.key}`);
      if (got === undefined) {
        missed++;
        if (missed <= 5) problems.push(`watch: ${name} missed revision ${e.revision} (${e.key}=${e.value})`);
      } else if (got.value !== e.value || got.type !== e.type) {
        problems.push(`watch: ${name}'s event at revision ${e.revision} differs: ${got.key}=${got.value} vs ${e.key}=${e.value}`);
      }
    }
    if (seen.size > truth.length) problems.push(`watch: ${name} saw ${seen.size - truth.length} events that are not in the history`);
    return { missed, duplicated };
  }
}
