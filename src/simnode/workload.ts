// What happens to the simulated cluster, all decided by the seed: clients calling the replicas as
// the KV and Lease services do (Replica.propose / linearizableRead), recorded in the history, and
// the nemesis (crashes, pauses, partitions, leader transfers, membership changes).
import { rangeRequest as mvccRangeRequest } from '../mvcc/index.ts';
import type { PutRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse } from '../mvcc/index.ts';
import type { Replica } from '../server/index.ts';
import { PERFECT_NETWORK } from '../sim/index.ts';
import type { NetworkFaults, SimRandom } from '../sim/index.ts';
import { assert, EtcdError, GrpcCode } from '../util/index.ts';
import { SimFailure } from './cluster.ts';
import type { ClusterProfile, SimCluster, SimNode } from './cluster.ts';
import type { History, KvInput, KvOutput, LeaseInput, LeaseOutput, OpStatus, SimOp } from './history.ts';

/** Per-seed knobs (swarm testing): each seed draws its own mix of clients and faults. */
export interface Profile {
  cluster: ClusterProfile;
  clients: number;
  /** Chance (‰) per step that an idle client issues an op. */
  opPermille: number;
  /** Relative weights of read, put, cas, delete. */
  mix: [number, number, number, number];
  /** Keys in use at once; a key retires after `opsPerKey` ops (keeps each key's history small). */
  activeKeys: number;
  opsPerKey: number;
  /** Leases alive at once (0 = no lease workload). */
  maxLeases: number;
  /** Mean ms between two keepalives of one lease (some leases outlive their TTL, some expire). */
  keepaliveEveryMs: number;
  /** Chance (ppm) per step that some client asks for a compaction (keeps a recent window). */
  compactPpm: number;
  /** Chance (ppm) per step of each fault. */
  crashPpm: number;
  pausePpm: number;
  partitionPpm: number;
  transferPpm: number;
  memberPpm: number;
  /** Nodes down or paused at once at most (sometimes a majority: the cluster then waits). */
  maxDown: number;
  maxFaultMs: number;
}

function pickNetwork(rnd: SimRandom, calm: boolean): NetworkFaults {
  if (calm) return { ...PERFECT_NETWORK, delayPermille: rnd.pick([0, 100]), maxDelayTicks: 2 };
  return {
    dropPermille: rnd.pick([0, 10, 30, 100]),
    duplicatePermille: rnd.pick([0, 10, 50]),
    delayPermille: rnd.pick([0, 100, 300, 700]),
    maxDelayTicks: rnd.pick([1, 3, 10, 30]),
    reorderPermille: rnd.pick([0, 10, 100]),
  };
}

export function randomProfile(rnd: SimRandom, size: number): Profile {
  const calm = rnd.chance(100);
  const cluster: ClusterProfile = {
    network: pickNetwork(rnd, calm),
    commitLatencyMs: rnd.pick([0, 0, 5, 20]),
    slowCommitPermille: rnd.pick([0, 0, 5, 30]),
    lateTickPermille: rnd.pick([0, 20, 100]),
    limits: {
      requestTimeoutMs: rnd.pick([1_500, 3_000, 7_000]),
      snapshotCount: rnd.pick([30, 100, 10_000]),
      snapshotCatchupEntries: rnd.pick([0, 5, 50]),
      maxCommandsPerEntry: rnd.pick([1, 4, 512]),
      maxEntryBytes: rnd.pick([256, 2 * 1024 * 1024]),
    },
    raft: {
      maxSizePerMsg: rnd.pick([256, 1024 * 1024]),
      maxInflightMsgs: rnd.pick([2, 256]),
    },
    duplicateProposals: false,
  };
  const faulty = !calm;
  return {
    cluster,
    clients: rnd.range(2, 8),
    opPermille: rnd.pick([100, 300, 800]),
    mix: rnd.pick([
      [4, 4, 2, 1],
      [2, 6, 3, 1],
      [6, 2, 3, 1],
    ]),
    activeKeys: rnd.pick([1, 3, 6]),
    opsPerKey: rnd.pick([30, 60]),
    maxLeases: rnd.pick([0, 1, 2]),
    keepaliveEveryMs: rnd.pick([700, 1_500, 3_000]),
    compactPpm: rnd.pick([0, 0, 3_000]),
    crashPpm: faulty ? rnd.pick([0, 1_000, 3_000, 8_000]) : 0,
    pausePpm: faulty ? rnd.pick([0, 1_000, 3_000]) : 0,
    partitionPpm: faulty ? rnd.pick([0, 2_000, 5_000, 10_000]) : 0,
    transferPpm: rnd.pick([0, 500, 2_000]),
    memberPpm: rnd.chance(300) ? rnd.pick([500, 1_500]) : 0,
    maxDown: rnd.chance(200) ? Math.floor(size / 2) + 1 : Math.floor((size - 1) / 2),
    maxFaultMs: rnd.pick([500, 2_000, 6_000]),
  };
}

const EMPTY = new Uint8Array(0);

function bytes(text: string): Uint8Array {
  return Buffer.from(text);
}

function text(value: Uint8Array): string {
  return Buffer.from(value).toString();
}

export function rangeRequest(key: string): RangeRequest {
  return mvccRangeRequest(bytes(key));
}

function putRequest(key: string, value: string, lease: number): PutRequest {
  return { key: bytes(key), value: bytes(value), lease, prevKv: false, ignoreValue: false, ignoreLease: false };
}

function casRequest(key: string, from: string, to: string): TxnRequest {
  return {
    compare: [
      { result: 'equal', target: 'value', key: bytes(key), rangeEnd: EMPTY, version: 0, createRevision: 0, modRevision: 0, value: bytes(from), lease: 0 },
    ],
    success: [{ type: 'put', put: putRequest(key, to, 0) }],
    failure: [],
  };
}

function valueOf(response: RangeResponse): string | null {
  return response.kvs.length === 0 ? null : text(response.kvs[0].value);
}

function headerRevision(response: unknown): number {
  if (typeof response === 'object' && response !== null && 'header' in response) {
    const header = (response as { header: { revision?: unknown } }).header;
    if (typeof header.revision === 'number') return header.revision;
  }
  return 0;
}

/** UNAVAILABLE (timeout, no leader, stopped) leaves the outcome open; other errors are definite. */
function isUncertain(error: EtcdError): boolean {
  return error.code === GrpcCode.UNAVAILABLE;
}

interface Client {
  process: number;
  busy: boolean;
}

interface LeaseRecord {
  key: string;
  id: number;
  ttlSeconds: number;
  client: Client;
  /** No more ops once it was revoked, seen gone, or retired. */
  done: boolean;
  nextKeepaliveMs: number;
  ops: number;
}

/** A lease seen gone from a replica's store (revoked or expired), for the expiry-timing check. */
export interface LeaseGone {
  id: number;
  node: number;
  ms: number;
}

/** Bound on recorded lease disappearances (one per lease per replica incarnation in practice). */
const MAX_LEASE_OBSERVATIONS = 1_000_000;

/** Ops per lease before the client stops using it. */
const OPS_PER_LEASE = 40;

export class Workload {
  readonly clients: Client[] = [];
  private nextProcess = 1;
  private nextValue = 1;
  private nextKey = 0;
  private nextLease = 1;
  readonly activeKeys: string[] = [];
  private readonly keyOps = new Map<string, number>();
  /** Every key the clients used: the final reads cover them all. */
  readonly usedKeys = new Set<string>();
  /** Recent values written per key, for compare-and-set operands that sometimes hold. */
  private readonly recentValues = new Map<string, string[]>();
  readonly leases: LeaseRecord[] = [];
  readonly leaseGone: LeaseGone[] = [];
  /** Ops in flight per node: they become unknown if the node goes down. */
  private readonly pending = new Map<number, Set<SimOp<unknown, unknown>>>();
  /** Set when a client callback sees something that is not an EtcdError (a server bug). */
  fatal: SimFailure | null = null;
  /** Clients stop issuing new ops (the calm phase issues only probes and final reads). */
  quiet = false;

  constructor(
    private readonly cluster: SimCluster,
    private readonly rnd: SimRandom,
    private readonly history: History,
    readonly profile: Profile,
  ) {
    for (let i = 0; i < profile.clients; i++) this.clients.push({ process: this.nextProcess++, busy: false });
    for (let i = 0; i < profile.activeKeys; i++) this.activeKeys.push(this.newKey());
    cluster.onNodeDown = (id) => this.nodeDown(id);
  }

  private newKey(): string {
    const key = `k${this.nextKey++}`;
    this.keyOps.set(key, 0);
    this.usedKeys.add(key);
    return key;
  }

  /** One step of client traffic. */
  act(): void {
    if (this.quiet) return;
    for (const client of this.clients) {
      if (!client.busy && this.rnd.chance(this.profile.opPermille)) this.kvOp(client);
    }
    this.leaseTraffic();
    if (this.profile.compactPpm > 0 && this.rnd.int(1_000_000) < this.profile.compactPpm) this.compact();
  }

  /**
   * etcd's Compact, to a revision a little behind the node's own: history below it goes, and the
   * checks then only look above the compacted revision. Not part of the history (a register op
   * never observes it); a refusal (already compacted, future revision) is fine.
   */
  private compact(): void {
    const node = this.pickNode();
    const replica = node === null ? null : this.cluster.replica(node.id);
    if (node === null || replica === null) return;
    const revision = replica.store.currentRevision - this.rnd.range(5, 50);
    if (revision <= replica.store.compactedRevision) return;
    this.cluster.trace.record('invoke', node.id, `compact to revision ${revision}`);
    replica.propose({ op: 'compact', req: { revision, physical: false } }).then(
      () => {},
      (error: unknown) => {
        if (!(error instanceof EtcdError)) this.fatal ??= new SimFailure('server error', `compaction on n${node.id} failed with ${String(error)}`);
      },
    );
  }

  // ---- kv ----

  private kvOp(client: Client): void {
    const target = this.pickNode();
    if (target === null) return;
    const slot = this.rnd.int(this.activeKeys.length);
    const key = this.activeKeys[slot];
    const count = (this.keyOps.get(key) ?? 0) + 1;
    this.keyOps.set(key, count);
    if (count >= this.profile.opsPerKey) this.activeKeys[slot] = this.newKey();
    const [read, write, cas] = this.profile.mix;
    const roll = this.rnd.int(this.profile.mix.reduce((a, b) => a + b, 0));
    if (roll < read) this.read(client, target, key);
    else if (roll < read + write) this.put(client, target, key);
    else if (roll < read + write + cas) this.cas(client, target, key);
    else this.del(client, target, key);
  }

  /** A client connects to any serving node, as etcd clients do (a follower forwards to the leader). */
  private pickNode(): SimNode | null {
    const nodes = this.cluster.serving();
    return nodes.length === 0 ? null : this.rnd.pick(nodes);
  }

  private value(): string {
    return `v${this.nextValue++}`;
  }

  private remember(key: string, value: string): void {
    const values = this.recentValues.get(key) ?? [];
    values.push(value);
    if (values.length > 3) values.shift();
    this.recentValues.set(key, values);
  }

  private read(client: Client, node: SimNode, key: string): void {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return;
    const op = this.invokeKv(client, node, { f: 'read', key });
    this.track(
      client,
      node,
      op,
      replica.linearizableRead(() => replica.store.range(rangeRequest(key))),
      (response) => [{ value: valueOf(response as RangeResponse) }, headerRevision(response), false],
    );
  }

  private put(client: Client, node: SimNode, key: string): void {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return;
    const value = this.value();
    this.remember(key, value);
    const op = this.invokeKv(client, node, { f: 'write', key, value });
    this.track(client, node, op, replica.propose({ op: 'put', req: putRequest(key, value, 0) }), (response): [KvOutput, number, boolean] => [
      { written: true },
      headerRevision(response),
      true,
    ]);
  }

  /** A probe write of the calm phase (liveness), by a fresh client. */
  probe(node: SimNode): SimOp<KvInput, KvOutput> | null {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return null;
    const client: Client = { process: this.nextProcess++, busy: false };
    const value = this.value();
    this.usedKeys.add('probe');
    const op = this.invokeKv(client, node, { f: 'write', key: 'probe', value });
    this.track(client, node, op, replica.propose({ op: 'put', req: putRequest('probe', value, 0) }), (response): [KvOutput, number, boolean] => [
      { written: true },
      headerRevision(response),
      true,
    ]);
    return op;
  }

  /** A final linearizable read of `key`, by a fresh client. */
  finalRead(key: string, node: SimNode): void {
    if (key.startsWith('lease')) return this.finalLeaseRead(key, node);
    this.read({ process: this.nextProcess++, busy: false }, node, key);
  }

  private cas(client: Client, node: SimNode, key: string): void {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return;
    const recent = this.recentValues.get(key) ?? [];
    const from = recent.length > 0 && this.rnd.chance(800) ? this.rnd.pick(recent) : 'v0';
    const to = this.value();
    this.remember(key, to);
    const op = this.invokeKv(client, node, { f: 'cas', key, from, to });
    this.track(client, node, op, replica.propose({ op: 'txn', req: casRequest(key, from, to) }), (response) => {
      const succeeded = (response as TxnResponse).succeeded;
      return [{ succeeded }, headerRevision(response), succeeded];
    });
  }

  private del(client: Client, node: SimNode, key: string): void {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return;
    const op = this.invokeKv(client, node, { f: 'delete', key });
    const req = { key: bytes(key), rangeEnd: EMPTY, prevKv: false };
    this.track(client, node, op, replica.propose({ op: 'deleteRange', req }), (response) => {
      const deleted = (response as { deleted: number }).deleted;
      return [{ deleted }, headerRevision(response), deleted > 0];
    });
  }

  private invokeKv(client: Client, node: SimNode, input: KvInput): SimOp<KvInput, KvOutput> {
    client.busy = true;
    const op = this.history.invoke<KvInput, KvOutput>(this.history.kv, client.process, node.id, input, this.cluster.now);
    op.floorRevision = this.cluster.replica(node.id)?.store.currentRevision ?? 0;
    this.cluster.trace.record('invoke', node.id, `#${op.id} p${client.process} ${describeKv(input)}`);
    return op;
  }

  /**
   * Follows one op's promise: ok with its decoded output, a definite failure, or unknown. The
   * callbacks run as microtasks inside the turn that resolved them, so the completion is recorded
   * at its place in the global order, before the simulator does anything else.
   */
  private track<I, O>(
    client: Client,
    node: SimNode,
    op: SimOp<I, O>,
    promise: Promise<unknown>,
    decode: (response: unknown) => [O, number, boolean],
  ): void {
    const inFlight = this.pendingOn(node.id);
    inFlight.add(op as SimOp<unknown, unknown>);
    promise.then(
      (response) => {
        inFlight.delete(op as SimOp<unknown, unknown>);
        if (op.status !== 'pending') return; // the node went down meanwhile: already unknown
        const [output, revision, wrote] = decode(response);
        this.history.complete(op, output, this.cluster.now, revision, wrote);
        this.cluster.trace.record('complete', node.id, `#${op.id} ok rev ${revision}`);
        client.busy = false;
      },
      (error: unknown) => {
        inFlight.delete(op as SimOp<unknown, unknown>);
        if (op.status !== 'pending') return;
        this.settleError(client, node, op, error);
      },
    );
  }

  private settleError<I, O>(client: Client, node: SimNode, op: SimOp<I, O>, error: unknown): void {
    client.busy = false;
    if (!(error instanceof EtcdError)) {
      this.fatal ??= new SimFailure('server error', `op #${op.id} on n${node.id} failed with ${String(error)}`);
      this.history.fail(op, String(error), this.cluster.now);
      return;
    }
    if (isUncertain(error)) {
      this.history.unknown(op, error.message);
      client.process = this.nextProcess++;
      this.cluster.trace.record('complete', node.id, `#${op.id} unknown: ${error.message}`);
      return;
    }
    this.history.fail(op, error.message, this.cluster.now);
    this.cluster.trace.record('complete', node.id, `#${op.id} failed: ${error.message}`);
  }

  private pendingOn(nodeId: number): Set<SimOp<unknown, unknown>> {
    let ops = this.pending.get(nodeId);
    if (ops === undefined) this.pending.set(nodeId, (ops = new Set()));
    return ops;
  }

  /** A node crashed or shut down: whatever its clients were waiting for may or may not have happened. */
  private nodeDown(id: number): void {
    const ops = this.pending.get(id);
    if (ops === undefined) return;
    for (const op of ops) {
      this.history.unknown(op, `n${id} went down`);
      const client = this.clients.find((c) => c.process === op.process) ?? this.leases.find((l) => l.client.process === op.process)?.client;
      if (client !== undefined) {
        client.busy = false;
        client.process = this.nextProcess++;
      }
    }
    ops.clear();
  }

  /** Everything still in flight at the end is unknown. */
  abandonAll(): void {
    for (const [id, ops] of this.pending) {
      for (const op of ops) this.history.unknown(op, `still pending at the end (n${id})`);
      ops.clear();
    }
  }

  // ---- leases ----

  private leaseTraffic(): void {
    const live = this.leases.filter((l) => !l.done);
    if (live.length < this.profile.maxLeases && this.rnd.chance(20)) this.grant();
    for (const lease of live) {
      if (lease.client.busy) continue;
      if (lease.ops >= OPS_PER_LEASE) {
        lease.done = true;
        continue;
      }
      const node = this.pickNode();
      if (node === null) continue;
      if (this.cluster.now >= lease.nextKeepaliveMs) {
        lease.nextKeepaliveMs = this.cluster.now + this.rnd.range(1, 2 * this.profile.keepaliveEveryMs);
        this.leaseOp(lease, node, { f: 'keepalive', key: lease.key, id: lease.id });
        continue;
      }
      // Per step: a put with the lease 3%, a read of its key 3%, a revoke 0.2%.
      const roll = this.rnd.int(1000);
      if (roll < 30) this.leaseOp(lease, node, { f: 'put', key: lease.key, id: lease.id, value: this.value() });
      else if (roll < 60) this.leaseOp(lease, node, { f: 'read', key: lease.key });
      else if (roll < 62) this.leaseOp(lease, node, { f: 'revoke', key: lease.key, id: lease.id });
    }
  }

  private grant(): void {
    const node = this.pickNode();
    if (node === null) return;
    const n = this.nextLease++;
    // Unique, below 2^53, and large: lease IDs cross the int64 boundary as checked numbers.
    const id = n * 2 ** 32 + this.rnd.int(2 ** 31) + 1;
    const ttlSeconds = this.rnd.pick([2, 3, 5]);
    const client: Client = { process: this.nextProcess++, busy: false };
    const lease: LeaseRecord = { key: `lease${n}`, id, ttlSeconds, client, done: false, nextKeepaliveMs: 0, ops: 0 };
    this.leases.push(lease);
    this.usedKeys.add(lease.key);
    lease.nextKeepaliveMs = this.cluster.now + this.rnd.range(1, 2 * this.profile.keepaliveEveryMs);
    this.leaseOp(lease, node, { f: 'grant', key: lease.key, id, ttlSeconds });
    // The leader's revoke on expiry: may happen any time after the grant was called, or never.
    const expiry = this.history.invoke<LeaseInput, LeaseOutput>(this.history.lease, 0, 0, { f: 'expire', key: lease.key, id }, this.cluster.now);
    this.history.unknown(expiry, 'expiry is decided by the leader');
  }

  private leaseOp(lease: LeaseRecord, node: SimNode, input: LeaseInput): void {
    const replica = this.cluster.replica(node.id);
    if (replica === null) return;
    lease.client.busy = true;
    lease.ops++;
    const op = this.history.invoke<LeaseInput, LeaseOutput>(this.history.lease, lease.client.process, node.id, input, this.cluster.now);
    op.floorRevision = replica.store.currentRevision;
    this.cluster.trace.record('invoke', node.id, `#${op.id} p${lease.client.process} ${lease.key}(${lease.id}) ${input.f}`);
    const promise = this.leaseCall(replica, input);
    const inFlight = this.pendingOn(node.id);
    inFlight.add(op as SimOp<unknown, unknown>);
    promise.then(
      (response) => {
        inFlight.delete(op as SimOp<unknown, unknown>);
        if (op.status !== 'pending') return;
        const output: LeaseOutput = input.f === 'read' ? { value: valueOf(response as RangeResponse) } : { done: true };
        const revision = headerRevision(response);
        this.history.complete(op, output, this.cluster.now, revision, input.f === 'put');
        this.cluster.trace.record('complete', node.id, `#${op.id} ok rev ${revision}`);
        lease.client.busy = false;
        if (input.f === 'revoke') lease.done = true;
      },
      (error: unknown) => {
        inFlight.delete(op as SimOp<unknown, unknown>);
        if (op.status !== 'pending') return;
        if (error instanceof EtcdError && error.code === GrpcCode.NOT_FOUND) {
          // The lease is gone (revoked or expired): an informative answer, not a failure.
          this.history.complete(op, { notFound: true }, this.cluster.now, 0, false);
          this.cluster.trace.record('complete', node.id, `#${op.id} lease not found`);
          lease.client.busy = false;
          lease.done = true;
          return;
        }
        this.settleError(lease.client, node, op, error);
        if (input.f === 'revoke' || input.f === 'grant') lease.done ||= (op.status as OpStatus) === 'fail';
      },
    );
  }

  private leaseCall(replica: Replica, input: LeaseInput): Promise<unknown> {
    switch (input.f) {
      case 'grant':
        return replica.propose({ op: 'leaseGrant', id: input.id, ttlSeconds: input.ttlSeconds });
      case 'keepalive':
        // As the Lease service: renewed in memory on the leader, else through the log (the sim has
        // no peer calls, so a follower's keepalive takes the path a node without its leader takes).
        return replica.renewLeaseOnLeader(input.id).then((renewed) => renewed ?? replica.propose({ op: 'leaseKeepAlive', id: input.id }));
      case 'revoke':
        return replica.propose({ op: 'leaseRevoke', id: input.id });
      case 'put':
        return replica.propose({ op: 'put', req: putRequest(input.key, input.value, input.id) });
      case 'read':
        return replica.linearizableRead(() => replica.store.range(rangeRequest(input.key)));
      case 'expire':
        throw new SimFailure('sim error', 'expire is not a client op');
    }
  }

  /** A linearizable read of a lease's key at the end, recorded in the lease history. */
  private finalLeaseRead(key: string, node: SimNode): void {
    const lease = this.leases.find((l) => l.key === key);
    if (lease === undefined) return;
    lease.client = { process: this.nextProcess++, busy: false };
    this.leaseOp(lease, node, { f: 'read', key });
  }

  /** Watches each replica's leases: one that disappears was revoked (by a client or on expiry) there. */
  observeLeases(seen: Map<number, { store: unknown; ids: Set<number> }>): void {
    assert(this.leaseGone.length < MAX_LEASE_OBSERVATIONS, () => `more than ${MAX_LEASE_OBSERVATIONS} lease disappearances`);
    for (const node of this.cluster.serving()) {
      const replica = this.cluster.replica(node.id);
      if (replica === null) continue;
      const ids = new Set(replica.store.leases().leases.map((l) => l.id));
      const before = seen.get(node.id);
      if (before !== undefined && before.store === replica.store) {
        for (const id of before.ids) if (!ids.has(id)) this.leaseGone.push({ id, node: node.id, ms: this.cluster.now });
      }
      seen.set(node.id, { store: replica.store, ids });
    }
  }
}

function describeKv(input: KvInput): string {
  switch (input.f) {
    case 'read':
      return `read ${input.key}`;
    case 'write':
      return `put ${input.key}=${input.value}`;
    case 'delete':
      return `delete ${input.key}`;
    case 'cas':
      return `cas ${input.key} ${input.from}→${input.to}`;
  }
}
