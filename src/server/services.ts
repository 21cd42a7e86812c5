// The node's side of etcd's Maintenance, Cluster and Watch services (the API layer decodes and
// encodes; these answer from the replicas).
import { randomInt } from 'node:crypto';
import { Client, credentials } from '@grpc/grpc-js';
import type {
  AlarmMember,
  AlarmRequest,
  AuthStamp,
  ClusterBackend,
  LeaseBackend,
  SnapshotStream,
  MaintenanceBackend,
  MemberInfo,
  MemberListResult,
  StatusResult,
  WatchBackend,
} from '../api/index.ts';
import type {
  HashKVResult,
  LeaseGrantResponse,
  ResponseHeader,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  MvccStore,
  WatchEvent,
  WatchHandle,
  WatchOptions,
  WatchSink,
  WatchState,
} from '../mvcc/index.ts';
import { ApiErrors } from '../api/index.ts';
import { copyConfState, ProposalDroppedError } from '../raft/index.ts';
import { PeerCallError } from '../transport/index.ts';
import type { ConfChangeSingle } from '../raft/index.ts';
import { EtcdError, Errors, GrpcCode } from '../util/index.ts';
import type { GrpcCodeValue } from '../util/index.ts';
import { memberId } from './members.ts';
import type { Member } from './members.ts';
import { backupChunks } from './backup.ts';
import { stamped } from './commands.ts';
import type { Command } from './commands.ts';
import { encodeConfContext } from './replica.ts';
import { buildSnapshotData } from './snapshots.ts';
import type { TesseraNode } from './node.ts';
import type { Replica } from './replica.ts';

/** The version etcdctl and clients see; Tessera implements the etcd 3.4 API. */
export const ETCD_API_VERSION = '3.4.0';

function firstReplica(node: TesseraNode): Replica {
  return node.replicaFor(node.rangeTable.all()[0].groupId);
}

export class MaintenanceService implements MaintenanceBackend {
  constructor(private readonly node: TesseraNode) {}

  async alarm(req: AlarmRequest): Promise<{ alarms: AlarmMember[] }> {
    const replica = firstReplica(this.node);
    const pending = replica.propose({ op: 'alarm', action: req.action, memberId: req.memberId, alarm: req.alarm });
    this.node.schedule();
    return { alarms: (await pending) as AlarmMember[] };
  }

  /** LMDB reuses freed pages in place, so there is nothing to rewrite; accepted for etcdctl compatibility. */
  async defragment(): Promise<void> {}

  async hash(): Promise<{ header: ResponseHeader; hash: number }> {
    const result = firstReplica(this.node).store.hashKV(0);
    return { header: { revision: result.revision }, hash: result.hash };
  }

  async hashKV(revision: number): Promise<HashKVResult> {
    return firstReplica(this.node).store.hashKV(revision);
  }

  /**
   * A consistent image of the first range as of this member's applied index, encoded a few chunks
   * per macrotask while the node keeps serving (snapshots.ts).
   */
  async snapshot(): Promise<SnapshotStream> {
    const replica = firstReplica(this.node);
    const { pieces, captured } = await buildSnapshotData(replica, () => ({
      index: replica.applied,
      term: replica.term,
      confState: copyConfState(replica.confState),
    }));
    return backupChunks(captured, pieces); // the image's pieces as they are: one copy of it in memory
  }

  async moveLeader(targetId: string): Promise<void> {
    const replica = firstReplica(this.node);
    if (!replica.isLeader) throw Errors.notLeader();
    const target = Number(targetId);
    if (!replica.members.has(target) || replica.confState.learners.includes(target)) throw ApiErrors.badLeaderTransferee();
    replica.enqueueRaftOp(() => replica.raft.transferLeader(target));
    this.node.schedule();
    const deadline = Date.now() + 2 * this.node.config.electionTimeout + 1_000;
    while (Date.now() < deadline) {
      if (replica.leaderId === target) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw Errors.timeout();
  }

  async status(): Promise<StatusResult> {
    const replica = firstReplica(this.node);
    const status = replica.raft.status();
    const dbSize = this.node.dbSizeBytes();
    return {
      header: { revision: replica.store.currentRevision },
      leader: String(replica.leaderId),
      raftTerm: status.hardState.term,
      raftIndex: status.hardState.commit,
      raftAppliedIndex: replica.applied,
      dbSize,
      dbSizeInUse: dbSize,
      version: ETCD_API_VERSION,
      // Every member's alarms, as etcd's AlarmMember.String() prints them (trailing space included).
      errors: [...replica.alarms].map((a) => `memberID:${a.split(':')[0]} alarm:${a.split(':')[1].toUpperCase()} `),
      isLearner: replica.confState.learners.includes(this.node.id),
    };
  }
}

/** MemberPromoteRequest{ID: id} in protobuf wire format: field 1, varint. */
function encodePromoteRequest(id: number): Buffer {
  const bytes = [0x08];
  for (let v = id; ; ) {
    const low = v % 128;
    v = Math.floor(v / 128);
    if (v === 0) {
      bytes.push(low);
      break;
    }
    bytes.push(low | 0x80);
  }
  return Buffer.from(bytes);
}

/** Sends MemberPromote to the leader's client URL (plain gRPC) and relays its verdict. */
async function forwardPromoteToLeader(replica: Replica, nodeId: number): Promise<void> {
  const url = replica.members.get(replica.leaderId)?.clientUrls[0];
  if (replica.leaderId === 0 || !url) throw Errors.noLeader();
  if (!url.startsWith('http://')) {
    throw new EtcdError(GrpcCode.FAILED_PRECONDITION, 'etcdserver: not leader; send MemberPromote to the leader');
  }
  const client = new Client(url.slice('http://'.length), credentials.createInsecure());
  try {
    await new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        '/etcdserverpb.Cluster/MemberPromote',
        (b: Buffer) => b,
        (b: Buffer) => b,
        encodePromoteRequest(nodeId),
        { deadline: Date.now() + 5_000 },
        (error) => {
          if (!error) resolve();
          else reject(new EtcdError((error.code ?? GrpcCode.UNAVAILABLE) as GrpcCodeValue, error.details || error.message));
        },
      );
    });
  } finally {
    client.close();
  }
}

export class ClusterService implements ClusterBackend {
  constructor(private readonly node: TesseraNode) {}

  /** Takes the replica explicitly: a member answering its own removal is already stopping. */
  private members(replica: Replica = firstReplica(this.node)): MemberInfo[] {
    const learners = new Set(replica.confState.learners);
    return [...replica.members.values()].map((m) => ({
      id: String(m.id),
      name: m.name,
      peerURLs: m.peerUrls,
      clientURLs: m.clientUrls,
      isLearner: learners.has(m.id),
    }));
  }

  async memberList(options: { linearizable: boolean }): Promise<MemberListResult> {
    if (options.linearizable) await this.caughtUp();
    return { members: this.members() };
  }

  async memberAdd(req: { peerURLs: string[]; isLearner: boolean }): Promise<{ member: MemberInfo; members: MemberInfo[] }> {
    const replica = await this.caughtUp();
    const taken = new Set([...replica.members.values()].flatMap((m) => m.peerUrls));
    if (req.peerURLs.some((url) => taken.has(url))) throw Errors.peerURLExist();
    const id = memberId(req.peerURLs, this.node.config.initialClusterToken);
    if (replica.removed.has(id)) {
      throw new EtcdError(
        GrpcCode.FAILED_PRECONDITION,
        'etcdserver: ID removed (a removed member is never re-added; use another peer URL or --initial-cluster-token)',
      );
    }
    const member: Member = { id, name: '', peerUrls: req.peerURLs, clientUrls: [] };
    await this.changeMembership(
      { type: req.isLearner ? 'addLearner' : 'addNode', nodeId: id },
      member,
      () => replica.members.has(id),
    );
    const members = this.members();
    return { member: members.find((m) => m.id === String(id))!, members };
  }

  async memberRemove(id: string): Promise<MemberListResult> {
    const replica = firstReplica(this.node);
    const nodeId = await this.known(id);
    await this.changeMembership({ type: 'removeNode', nodeId }, null, () => !replica.members.has(nodeId));
    return { members: this.members(replica) };
  }

  async memberUpdate(req: { id: string; peerURLs: string[] }): Promise<MemberListResult> {
    const nodeId = await this.known(req.id);
    const pending = firstReplica(this.node).propose({ op: 'memberAttrs', id: nodeId, attrs: { peerUrls: req.peerURLs } });
    this.node.schedule();
    await pending;
    return { members: this.members() };
  }

  async memberPromote(id: string): Promise<MemberListResult> {
    const nodeId = await this.known(id);
    const replica = firstReplica(this.node);
    if (!replica.confState.learners.includes(nodeId)) {
      throw new EtcdError(GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
    }
    if (!replica.isLeader) {
      // Only the leader tracks how far the learner is; etcd forwards promote to it, and so do we.
      await forwardPromoteToLeader(replica, nodeId);
      await this.caughtUp();
      return { members: this.members() };
    }
    const progress = replica.raft.status().progress?.get(nodeId);
    if (!progress || progress.match < 0.9 * replica.raft.status().lastIndex) {
      throw new EtcdError(GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader');
    }
    await this.changeMembership({ type: 'addNode', nodeId }, null, () => !replica.confState.learners.includes(nodeId));
    return { members: this.members() };
  }

  /** A read barrier: this member's view of the membership is at least as new as the leader's commit. */
  private async caughtUp(): Promise<Replica> {
    const replica = firstReplica(this.node);
    const read = replica.linearizableRead(() => replica);
    this.node.schedule();
    return read;
  }

  private async known(id: string): Promise<number> {
    const nodeId = Number(id);
    if (!(await this.caughtUp()).members.has(nodeId)) throw Errors.memberNotFound();
    return nodeId;
  }

  /** Proposes one conf change (at the next turn) and waits until it has applied here. */
  private async changeMembership(change: ConfChangeSingle, member: Member | null, applied: () => boolean): Promise<void> {
    const replica = await this.caughtUp();
    if (replica.leaderId === 0) throw Errors.noLeader();
    let failure: Error | null = null;
    replica.enqueueRaftOp(() => {
      try {
        replica.raft.proposeConfChange({ transition: 'auto', changes: [change], context: encodeConfContext(member) });
      } catch (error) {
        if (!(error instanceof ProposalDroppedError)) throw error;
        failure = new EtcdError(GrpcCode.FAILED_PRECONDITION, `etcdserver: membership change refused: ${error.detail || error.reason}`);
      }
    });
    this.node.schedule();
    const deadline = Date.now() + this.node.config.limits.requestTimeoutMs;
    while (Date.now() < deadline) {
      if (failure) throw failure;
      if (applied()) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw Errors.timeout();
  }
}

/**
 * A watch that survives its replica's store being replaced by a snapshot install: it moves to
 * the new store from the first revision it has not delivered yet.
 */
class ReplicaWatch implements WatchHandle {
  private inner: WatchHandle;

  constructor(
    private readonly options: WatchOptions,
    private readonly sink: WatchSink,
    store: MvccStore,
  ) {
    this.inner = store.watch(options, sink);
  }

  get id(): number {
    return this.inner.id;
  }
  get state(): WatchState {
    return this.inner.state;
  }
  get nextRevision(): number {
    return this.inner.nextRevision;
  }
  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
  cancel(): void {
    this.inner.cancel();
  }

  /** Re-registers on `store`; a watcher whose next revision was compacted away is cancelled. */
  moveTo(store: MvccStore): void {
    const paused = this.inner.state === 'paused';
    const from = this.inner.nextRevision;
    this.inner.cancel();
    this.inner = store.watch({ ...this.options, startRevision: from }, (events: WatchEvent[], revision: number) =>
      this.sink(events, revision),
    );
    if (paused) this.inner.pause();
  }
}

export class WatchService implements WatchBackend {
  private readonly watches = new Map<Replica, Set<ReplicaWatch>>();

  constructor(private readonly node: TesseraNode) {}

  currentRevision(): number {
    return firstReplica(this.node).store.currentRevision;
  }

  watch(options: WatchOptions, sink: WatchSink): WatchHandle {
    const replica = this.node.replicaFor(this.node.rangeTable.groupForSpan(options.key, options.rangeEnd));
    const watch = new ReplicaWatch(options, sink, replica.store);
    let set = this.watches.get(replica);
    if (!set) this.watches.set(replica, (set = new Set()));
    set.add(watch);
    const cancel = watch.cancel.bind(watch);
    watch.cancel = () => {
      set.delete(watch);
      cancel();
    };
    return watch;
  }

  /** Called after `replica` installed a snapshot (its store object changed). */
  storeReplaced(replica: Replica): void {
    for (const watch of this.watches.get(replica) ?? []) {
      try {
        watch.moveTo(replica.store);
      } catch (error) {
        this.node.logger.warn({ err: error }, 'watch could not follow a snapshot install; cancelled');
        this.watches.get(replica)?.delete(watch);
      }
    }
  }
}

/** Lease IDs this node hands out: random, positive, below 2^53 (see docs/ARCHITECTURE.md on int64). */
function randomLeaseId(): number {
  return randomInt(1, 2 ** 47) * 64 + randomInt(64);
}

/** How long a follower waits for the leader's answer to a forwarded keepalive or TTL lookup. */
const LEASE_FORWARD_TIMEOUT_MS = 2_000;

/**
 * etcd's Lease service. Grants and revokes are Raft entries; keepalives renew on the leader in
 * memory (etcd's lessor), a follower forwards them to the leader over the peer transport (etcd
 * uses its peer HTTP API), and only when the leader cannot be asked does a keepalive go through
 * the log. TimeToLive is answered by the leader, whose clock holds the deadlines.
 */
export class LeaseService implements LeaseBackend {
  constructor(private readonly node: TesseraNode) {}

  /** A follower's forwarded request (the node routes peer calls here). Anything but an answer from the leader itself is an error. */
  async answerPeerCall(_from: number, method: string, body: unknown): Promise<unknown> {
    const id = (body as { id?: unknown } | null)?.id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) throw Errors.leaseNotFound();
    switch (method) {
      case 'leaseKeepAlive': {
        const replica = this.replica();
        const renewed = replica.renewLeaseOnLeader(id);
        this.node.schedule();
        const result = await renewed;
        if (result === null) throw Errors.notLeader();
        return result.ttl;
      }
      case 'leaseTimeToLive': {
        const replica = this.replica();
        if (!replica.isLeader) throw Errors.notLeader();
        return this.localTimeToLive(id, (body as { keys?: unknown }).keys === true);
      }
      default:
        throw new Error(`unknown peer call ${method}`);
    }
  }

  /** Asks the leader (not this node) over the peer transport; null when it cannot be asked or is not the leader any more. */
  private async askLeader<T>(method: string, body: unknown): Promise<T | null> {
    const leader = this.replica().leaderId;
    if (leader === 0 || leader === this.node.id) return null;
    try {
      return (await this.node.peerCall(leader, method, body, LEASE_FORWARD_TIMEOUT_MS)) as T;
    } catch (error) {
      if (error instanceof PeerCallError && error.reason === 'remote' && error.message === Errors.leaseNotFound().message) {
        throw Errors.leaseNotFound();
      }
      return null; // not the leader any more, unreachable, timed out, overloaded: answer without it
    }
  }

  private replica(): Replica {
    return firstReplica(this.node);
  }

  private propose<T>(cmd: Command): Promise<T> {
    const response = this.replica().propose(cmd) as Promise<T>;
    this.node.schedule();
    return response;
  }

  currentRevision(): number {
    return this.replica().store.currentRevision;
  }

  leaseGrant(req: { id: number; ttl: number }): Promise<LeaseGrantResponse> {
    return this.propose({ op: 'leaseGrant', id: req.id === 0 ? randomLeaseId() : req.id, ttlSeconds: req.ttl });
  }

  leaseRevoke(id: number, stamp?: AuthStamp): Promise<LeaseRevokeResponse> {
    return this.propose(stamped({ op: 'leaseRevoke', id }, stamp));
  }

  async leaseKeepAlive(id: number): Promise<number> {
    const replica = this.replica();
    const renewed = replica.renewLeaseOnLeader(id);
    this.node.schedule();
    const local = await renewed;
    if (local !== null) return local.ttl;
    const forwarded = await this.askLeader<number>('leaseKeepAlive', { id });
    if (forwarded !== null) return forwarded;
    // No leader this node can ask: through the log, which renews on every replica when it applies.
    const response = await this.propose<{ ttl: number }>({ op: 'leaseKeepAlive', id });
    return response.ttl;
  }

  async leaseTimeToLive(req: { id: number; keys: boolean }): Promise<LeaseTimeToLiveResponse> {
    if (!this.replica().isLeader) {
      const answer = await this.askLeader<LeaseTimeToLiveResponse>('leaseTimeToLive', { id: req.id, keys: req.keys });
      if (answer !== null) return answer;
    }
    // The leader, or no leader to ask: this replica's clock (a follower's is only as new as the last grant).
    return this.localTimeToLive(req.id, req.keys);
  }

  private async localTimeToLive(id: number, keys: boolean): Promise<LeaseTimeToLiveResponse> {
    const replica = this.replica();
    const read = replica.linearizableRead(() => replica.store.leaseTimeToLive(id, keys));
    this.node.schedule();
    const response = await read;
    const remaining = replica.leaseClock.remainingSeconds(id);
    return { ...response, ttl: remaining >= 0 ? remaining : response.ttl };
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    const replica = this.replica();
    const response = replica.linearizableRead(() => replica.store.leases());
    this.node.schedule();
    return response;
  }
}
