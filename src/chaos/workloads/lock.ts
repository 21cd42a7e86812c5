// Lock workload with fencing tokens, in one of two forms, chosen at setup:
// - `service`: etcd's Lock service (v3lockpb.Lock) with one lease per acquisition; the token is the
//   create revision of the key Lock returns. A lease can expire under faults, so a holder may lose
//   its lock without knowing: fencing, not real time, is what keeps the resource safe.
// - `recipe`, when the node does not serve Lock: etcd's lock recipe (clientv3/concurrency.Mutex) on
//   plain Txns with lease-less keys: a client creates `holders/<client>-<n>` (Txn: create_revision
//   == 0), holds the lock once its key has the lowest create revision under the prefix, and deletes
//   its key to release. Clients never crash (only servers do), so no lease is needed; a release
//   whose outcome is unknown is retried until it succeeds. A create whose outcome was unknown can
//   still land after its client moved on (e.g. held by a paused node): with no lease to expire it,
//   that orphan would block everyone, so waiters delete holder keys no client is using (this
//   process knows its clients' live keys; the delete is guarded by the orphan's create revision).
// Either way the protected resource is written only by a Txn guarded by "our lock key still has
// create revision = our token". Checks: the resource's reads and writes are linearizable; the
// final counter equals the increments that took effect (acknowledged ≤ counter ≤ acknowledged +
// unknown); with the recipe (no expiry), holds also never overlap in real time, are granted in
// token order, and no holder ever sees a newer token on the resource.
import { checkLinearizable, htmlTimeline, registerModel, textReport } from '../checker/index.ts';
import type { RegisterInput, RegisterOutput, TimelineBand } from '../checker/index.ts';
import { prefixEnd, toCallError } from '../client.ts';
import type { EtcdClient } from '../client.ts';
import { History } from '../history.ts';
import type { Random } from '../random.ts';
import { ClientSlot, Processes, combine, sleep, statusLine } from './common.ts';
import type { Workload, WorkloadContext, WorkloadResult } from './common.ts';

export interface LockOptions {
  workers: number;
}

interface Hold {
  worker: number;
  token: number;
  /** When the client learned it holds the lock, and when it started to release it (ns). */
  acquiredNs: number;
  releaseNs: number;
}

/** TTL of each acquisition's lease (service mode): longer than any fault, so expiry stays rare. */
const LEASE_TTL_SECONDS = 15;
/** Deadline of one Lock call (it waits for the holders queued before it). */
const LOCK_WAIT_MS = 10_000;
/** Poll interval while waiting for the lock (the recipe's watch on the predecessor, as polling). */
const POLL_MS = 50;
/** How long a release keeps retrying (the cluster may be down for a fault's whole duration). */
const RELEASE_RETRY_MS = 60_000;

export class LockWorkload implements Workload {
  readonly name = 'lock';
  readonly history: History<RegisterInput, RegisterOutput>;
  private readonly processes: Processes;
  private readonly holdersPrefix: string;
  private readonly resource: string;
  private readonly holds: Hold[] = [];
  private readonly problems: string[] = [];
  private fencingViolations = 0;
  /** Holder keys some client is using (recipe mode); any other holder key is an orphan. */
  private readonly liveKeys = new Set<string>();
  private orphansRemoved = 0;
  private mode: 'service' | 'recipe' = 'recipe';
  /** Writes the fencing guard refused (a holder whose lock had expired). */
  private fencedWrites = 0;
  private readonly lockName: string;

  constructor(ctx: WorkloadContext, options: LockOptions) {
    this.history = new History(ctx.clock);
    this.processes = new Processes(options.workers);
    this.holdersPrefix = `${ctx.prefix}lock/holders/`;
    this.resource = `${ctx.prefix}lock/resource`;
    this.lockName = `${ctx.prefix}lock/service`;
  }

  /** Uses the Lock service when the node serves it (an Unlock of a key that does not exist is a no-op). */
  async setup(ctx: WorkloadContext): Promise<void> {
    try {
      await ctx.patientClients[0].unlock(`${this.lockName}/probe`);
      await ctx.patientClients[0].leaseRevoke(await ctx.patientClients[0].leaseGrant(LEASE_TTL_SECONDS));
      this.mode = 'service';
    } catch (error) {
      ctx.log(`lock: no Lock/Lease service (${toCallError(error).message}); using etcd's lock recipe on Txn`);
      this.mode = 'recipe';
    }
    ctx.log(`lock: mode ${this.mode}`);
  }

  async worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void> {
    const slot = new ClientSlot(ctx, index, this.processes);
    if (this.mode === 'service') return this.serviceWorker(ctx, index, slot, rng);
    for (let attempt = 0; ctx.running(); attempt++) {
      const myKey = `${this.holdersPrefix}w${String(index).padStart(3, '0')}-${attempt}`;
      this.liveKeys.add(myKey);
      const token = await this.create(ctx, slot, myKey);
      if (token === null) break;
      const acquired = await this.waitForTurn(ctx, slot, myKey);
      if (acquired) {
        const acquiredNs = ctx.clock.nowNs();
        await this.criticalSection(slot, myKey, token);
        this.holds.push({ worker: index, token, acquiredNs, releaseNs: ctx.clock.nowNs() });
      }
      await this.release(slot, myKey);
      await sleep(rng.int(20));
    }
  }

  /** Lease, Lock, critical section, Unlock, revoke; a lease revoke also removes a key whose Lock outcome was unknown. */
  private async serviceWorker(ctx: WorkloadContext, index: number, slot: ClientSlot, rng: Random): Promise<void> {
    while (ctx.running()) {
      let lease: number;
      try {
        lease = await slot.client.leaseGrant(LEASE_TTL_SECONDS);
      } catch (error) {
        await slot.afterError(toCallError(error));
        continue;
      }
      let key: string | null = null;
      try {
        key = await slot.client.lock(this.lockName, lease, LOCK_WAIT_MS);
      } catch (error) {
        await slot.afterError(toCallError(error));
      }
      if (key !== null) {
        const token = await this.tokenOf(slot, key);
        if (token !== null) {
          const acquiredNs = ctx.clock.nowNs();
          await this.criticalSection(slot, key, token);
          this.holds.push({ worker: index, token, acquiredNs, releaseNs: ctx.clock.nowNs() });
        }
        await this.retry(slot, `unlock ${key}`, (c) => c.unlock(key));
      }
      await this.retry(slot, `revoke lease ${lease}`, (c) => c.leaseRevoke(lease));
      await sleep(rng.int(20));
    }
  }

  /** The create revision of our lock key, or null if it is already gone (the lease expired). */
  private async tokenOf(slot: ClientSlot, key: string): Promise<number | null> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return (await slot.client.range(key)).kvs[0]?.createRevision ?? null;
      } catch (error) {
        await slot.afterError(toCallError(error));
      }
    }
    return null;
  }

  /** Repeats an idempotent cleanup call until it succeeds or is refused (e.g. the lease is already gone). */
  private async retry(slot: ClientSlot, what: string, call: (client: EtcdClient) => Promise<void>): Promise<void> {
    const until = Date.now() + RELEASE_RETRY_MS;
    while (Date.now() < until) {
      try {
        await call(slot.client);
        return;
      } catch (raw) {
        const error = toCallError(raw);
        if (error.code === 5 /* NOT_FOUND */) return;
        await slot.afterError(error);
      }
    }
    this.problems.push(`lock: could not ${what} within ${RELEASE_RETRY_MS} ms`);
  }

  /** Creates our key (idempotently: a retry after an unknown outcome finds it); its create revision is the token. */
  private async create(ctx: WorkloadContext, slot: ClientSlot, myKey: string): Promise<number | null> {
    while (ctx.running()) {
      try {
        const r = await slot.client.txn([{ key: myKey, target: 'CREATE', result: 'EQUAL', value: 0 }], [{ put: { key: myKey, value: '' } }], [{ range: { key: myKey } }]);
        if (r.succeeded) return r.revision;
        const existing = r.ranges[0]?.[0];
        if (existing) return existing.createRevision;
      } catch (error) {
        await slot.afterError(toCallError(error));
      }
    }
    // Out of time: our key may exist (an unknown outcome); the caller's release removes it.
    await this.release(slot, myKey);
    return null;
  }

  /** Polls the holders until ours has the lowest create revision; false if the run ended first. */
  private async waitForTurn(ctx: WorkloadContext, slot: ClientSlot, myKey: string): Promise<boolean> {
    while (ctx.running()) {
      try {
        const r = await slot.client.range(this.holdersPrefix, { rangeEnd: prefixEnd(this.holdersPrefix) });
        const first = r.kvs.reduce((a, b) => (b.createRevision < a.createRevision ? b : a), r.kvs[0]);
        if (first === undefined || !r.kvs.some((kv) => kv.key === myKey)) {
          this.problems.push(`lock: ${myKey} vanished while waiting`);
          return false;
        }
        if (first.key === myKey) return true;
        if (!this.liveKeys.has(first.key)) {
          const removed = await slot.client.txn(
            [{ key: first.key, target: 'CREATE', result: 'EQUAL', value: first.createRevision }],
            [{ deleteRange: { key: first.key } }],
          );
          if (removed.succeeded) this.orphansRemoved++;
          continue;
        }
        await sleep(POLL_MS);
      } catch (error) {
        await slot.afterError(toCallError(error));
      }
    }
    return false;
  }

  /** Reads the resource (`token:count`) and writes count+1 under our token, guarded by our key. */
  private async criticalSection(slot: ClientSlot, myKey: string, token: number): Promise<void> {
    const key = this.resource;
    const read = await slot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ value: r.kvs[0]?.value ?? null }));
    if (!('result' in read)) return;
    const [storedToken, count] = (read.result.kvs[0]?.value ?? '0:0').split(':').map(Number);
    if (storedToken > token) {
      // With leases, our lock may have expired and passed on: then we must not write. Without
      // leases nobody can overtake a holder.
      if (this.mode === 'recipe') {
        this.fencingViolations++;
        this.problems.push(`lock: holder with token ${token} read the resource written under a newer token ${storedToken} (op ${read.op.id})`);
      }
      return;
    }
    const value = `${token}:${count + 1}`;
    const write = await slot.run(
      this.history,
      { f: 'write', key, value },
      (c: EtcdClient) => c.txn([{ key: myKey, target: 'CREATE', result: 'EQUAL', value: token }], [{ put: { key, value } }]),
      () => ({}),
    );
    if ('result' in write && !write.result.succeeded) {
      write.op.status = 'fail';
      write.op.error = 'fencing guard failed';
      this.fencedWrites++;
      if (this.mode === 'recipe') this.problems.push(`lock: holder with token ${token} lost its lock key during its critical section (op ${write.op.id})`);
    }
  }

  /** Deletes our key, retrying until it is certainly gone. */
  private async release(slot: ClientSlot, myKey: string): Promise<void> {
    const until = Date.now() + RELEASE_RETRY_MS;
    while (Date.now() < until) {
      try {
        await slot.client.txn([], [{ deleteRange: { key: myKey } }]);
        this.liveKeys.delete(myKey);
        return;
      } catch (error) {
        await slot.afterError(toCallError(error));
      }
    }
    this.problems.push(`lock: could not release ${myKey} within ${RELEASE_RETRY_MS} ms`);
  }

  async finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult> {
    const problems = [...this.problems];
    const exclusion = this.mode === 'recipe' ? this.checkHolds(problems) : 0;
    const finalSlot = new ClientSlot({ ...ctx, clients: ctx.patientClients }, 0, this.processes);
    finalSlot.process = this.processes.fresh();
    let count: number | null = null;
    for (let attempt = 0; attempt < 5 && count === null; attempt++) {
      const key = this.resource;
      const read = await finalSlot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ value: r.kvs[0]?.value ?? null }));
      if ('result' in read) count = Number((read.result.kvs[0]?.value ?? '0:0').split(':')[1]);
    }
    let lost = 0;
    let duplicated = 0;
    const writes = this.history.ops.filter((op) => op.input.f === 'write');
    const acked = writes.filter((op) => op.status === 'ok').length;
    const unknown = writes.filter((op) => op.status === 'unknown').length;
    if (count === null) problems.push('lock: final read of the resource failed');
    else if (count < acked) {
      lost = acked - count;
      problems.push(`lock: counter is ${count} but ${acked} increments were acknowledged`);
    } else if (count > acked + unknown) {
      duplicated = count - acked - unknown;
      problems.push(`lock: counter is ${count} but at most ${acked + unknown} increments were sent`);
    }
    const check = checkLinearizable(registerModel, this.history.operations(), { timeoutMs: ctx.checkTimeoutMs });
    return {
      ops: this.history.ops.length,
      linearizable: combine(check, exclusion + this.fencingViolations),
      lost,
      duplicated,
      problems,
      report: [
        `lock: ${statusLine(this.history)}; ${this.holds.length} holds; counter ${count ?? '?'} (${acked} acknowledged, ${unknown} unknown increments); ${this.fencedWrites} writes refused by the fencing guard; ${this.orphansRemoved} orphan holder keys removed`,
        this.mode === 'service'
          ? 'lock: etcd Lock service with a lease per acquisition (real-time exclusion not checked: leases may expire)'
          : 'lock: etcd lock recipe on Txn + lease-less keys (the node serves no Lock service)',
        textReport(registerModel, check),
        ...problems.map((p) => `problem: ${p}`),
      ].join('\n'),
      html: htmlTimeline(registerModel, check, [...bands, ...this.holds.map((h) => ({ start: h.acquiredNs, end: h.releaseNs, label: `w${h.worker} holds (token ${h.token})` }))]),
      history: this.history.toJsonLines(),
    };
  }

  /** Holds must not overlap in real time and must be granted in token order. Returns violations. */
  private checkHolds(problems: string[]): number {
    const holds = [...this.holds].sort((a, b) => a.acquiredNs - b.acquiredNs);
    let violations = 0;
    let latest: Hold | null = null;
    let previousToken = 0;
    for (const hold of holds) {
      if (latest !== null && hold.acquiredNs < latest.releaseNs) {
        violations++;
        problems.push(`lock: w${hold.worker} (token ${hold.token}) acquired while w${latest.worker} (token ${latest.token}) still held it`);
      }
      if (hold.token < previousToken) {
        violations++;
        problems.push(`lock: token ${hold.token} granted after token ${previousToken}`);
      }
      previousToken = hold.token;
      if (latest === null || hold.releaseNs > latest.releaseNs) latest = hold;
    }
    return violations;
  }
}
