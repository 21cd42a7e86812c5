// Backends for the non-KV services, for the API tests: in-memory fakes shaped like a node, built
// over the real MvccStore where the store has the state (revisions, leases, watches, hashes).
import type {
  AlarmMember,
  AlarmRequest,
  ClusterBackend,
  LeaseBackend,
  MaintenanceBackend,
  MemberInfo,
  MemberListResult,
  SnapshotStream,
  StatusResult,
  WatchBackend,
} from '../../src/api/index.ts';
import { ApiErrors } from '../../src/api/index.ts';
import { Errors } from '../../src/util/index.ts';
import type {
  HashKVResult,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  MvccStore,
  ResponseHeader,
  WatchHandle,
  WatchOptions,
  WatchSink,
} from '../../src/mvcc/index.ts';

/** Member IDs beyond 2^53, so a lossy number anywhere on the path shows. */
export const MEMBER_A = '10276657743932975437';
export const MEMBER_B = '12345678901234567890';

/** Frames MvccStore snapshot chunks into one byte stream: [u32 length][chunk]..., then a 0 length. */
export function frameSnapshot(store: MvccStore): Buffer {
  const parts: Buffer[] = [];
  for (const chunk of Array.from(store.snapshotChunks(64 * 1024))) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(chunk.length);
    parts.push(length, Buffer.from(chunk));
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

/** The inverse of frameSnapshot; trailing bytes after the end marker (the API's padding) are ignored. */
export function unframeSnapshot(bytes: Buffer): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; ;) {
    const length = bytes.readUInt32BE(offset);
    offset += 4;
    if (length === 0) return chunks;
    chunks.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
}

export class FakeMaintenance implements MaintenanceBackend {
  readonly self = MEMBER_A;
  leader = MEMBER_A;
  errors: string[] = [];
  alarms: AlarmMember[] = [];
  defragments = 0;
  calls = 0;
  /** Snapshot streams handed out and not yet closed. */
  openSnapshots = 0;
  private failure: unknown = null;

  constructor(readonly store: MvccStore) {}

  failNext(error: unknown): void {
    this.failure = error;
  }

  async status(): Promise<StatusResult> {
    this.enter();
    return {
      header: { revision: this.store.currentRevision },
      leader: this.leader,
      raftTerm: 7,
      raftIndex: 42,
      raftAppliedIndex: 41,
      dbSize: 24_576,
      dbSizeInUse: 16_384,
      version: '3.4.0',
      errors: [
        ...this.errors,
        ...this.alarms.map((a) => `memberID:${a.memberId} alarm:${a.alarm.toUpperCase()} `),
      ],
      isLearner: false,
    };
  }

  /** etcd's alarm store: one alarm per (member, type); GET with NONE lists all. */
  async alarm(req: AlarmRequest): Promise<{ alarms: AlarmMember[] }> {
    this.enter();
    const same = (a: AlarmMember) => a.memberId === req.memberId && a.alarm === req.alarm;
    switch (req.action) {
      case 'get':
        return { alarms: this.alarms.filter((a) => req.alarm === 'none' || a.alarm === req.alarm) };
      case 'activate': {
        if (req.alarm === 'none') return { alarms: [] };
        const member = { memberId: req.memberId, alarm: req.alarm };
        if (!this.alarms.some(same)) this.alarms.push(member);
        return { alarms: [member] };
      }
      case 'deactivate': {
        const found = this.alarms.find(same);
        if (found === undefined) return { alarms: [] };
        this.alarms = this.alarms.filter((a) => !same(a));
        return { alarms: [found] };
      }
    }
  }

  async defragment(): Promise<void> {
    this.enter();
    this.defragments += 1;
  }

  async hash(): Promise<{ header: ResponseHeader; hash: number }> {
    this.enter();
    const result = this.store.hashKV(0);
    return { header: { revision: result.revision }, hash: result.hash };
  }

  async hashKV(revision: number): Promise<HashKVResult> {
    this.enter();
    return this.store.hashKV(revision);
  }

  /** The framed snapshot, yielded in uneven pieces so the API's re-slicing is exercised. */
  async snapshot(): Promise<SnapshotStream> {
    this.enter();
    const bytes = frameSnapshot(this.store);
    this.openSnapshots += 1;
    const pieces = function* () {
      for (let offset = 0, step = 1000; offset < bytes.length; offset += step, step = step * 3 + 7) {
        yield bytes.subarray(offset, offset + step);
      }
    };
    return { size: bytes.length, chunks: pieces(), close: () => void (this.openSnapshots -= 1) };
  }

  async moveLeader(targetId: string): Promise<void> {
    this.enter();
    if (this.leader !== this.self) throw Errors.notLeader();
    if (targetId !== MEMBER_B) throw Errors.memberNotFound();
    this.leader = targetId;
  }

  protected enter(): void {
    this.calls += 1;
    if (this.failure === null) return;
    const error = this.failure;
    this.failure = null;
    throw error;
  }
}

/** etcd's membership rules, in memory: IDs unique, peer URLs unique, only learners promoted. */
export class FakeCluster implements ClusterBackend {
  members: MemberInfo[] = [
    {
      id: MEMBER_A,
      name: 'n1',
      peerURLs: ['http://127.0.0.1:2380'],
      clientURLs: ['http://127.0.0.1:2379'],
      isLearner: false,
    },
    { id: MEMBER_B, name: '', peerURLs: ['http://127.0.0.2:2380'], clientURLs: [], isLearner: true },
  ];
  lastLinearizable: boolean | null = null;
  nextId = 2n ** 63n + 5n;

  async memberList(options: { linearizable: boolean }): Promise<MemberListResult> {
    this.lastLinearizable = options.linearizable;
    return this.list();
  }

  async memberAdd(req: {
    peerURLs: string[];
    isLearner: boolean;
  }): Promise<{ member: MemberInfo; members: MemberInfo[] }> {
    if (this.members.some((m) => m.peerURLs.some((url) => req.peerURLs.includes(url))))
      throw Errors.peerURLExist();
    const member = {
      id: String(this.nextId++),
      name: '',
      peerURLs: req.peerURLs,
      clientURLs: [],
      isLearner: req.isLearner,
    };
    this.members.push(member);
    return {
      member: { ...member, name: 'should-not-be-sent', clientURLs: ['http://x:1'] },
      members: this.list().members,
    };
  }

  async memberRemove(id: string): Promise<MemberListResult> {
    this.find(id);
    this.members = this.members.filter((m) => m.id !== id);
    return this.list();
  }

  async memberUpdate(req: { id: string; peerURLs: string[] }): Promise<MemberListResult> {
    this.find(req.id).peerURLs = req.peerURLs;
    return this.list();
  }

  async memberPromote(id: string): Promise<MemberListResult> {
    const member = this.find(id);
    if (!member.isLearner) throw ApiErrors.memberNotLearner();
    member.isLearner = false;
    return this.list();
  }

  private find(id: string): MemberInfo {
    const member = this.members.find((m) => m.id === id);
    if (member === undefined) throw Errors.memberNotFound();
    return member;
  }

  private list(): MemberListResult {
    return {
      members: this.members.map((m) => ({ ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] })),
    };
  }
}

/** The Watch backend the server will be: MvccStore.watch as is, with the sinks' answers recorded. */
export class StoreWatch implements WatchBackend {
  /** How often a sink answered false (asked its watcher to pause). */
  pauses = 0;
  handles: WatchHandle[] = [];

  constructor(readonly store: MvccStore) {}

  currentRevision(): number {
    return this.store.currentRevision;
  }

  watch(options: WatchOptions, sink: WatchSink): WatchHandle {
    const handle = this.store.watch(options, (events, revision) => {
      const answer = sink(events, revision);
      if (answer === false) this.pauses += 1;
      return answer;
    });
    this.handles.push(handle);
    return handle;
  }
}

/**
 * The Lease backend the server will be, minus Raft: grants, revokes and key attachment in the
 * real MvccStore; the countdown on a clock the test controls (the server owns time, not mvcc).
 */
export class StoreLeases implements LeaseBackend {
  nowMs = 1_000_000;
  private nextId = 0x7000;
  private readonly deadlines = new Map<number, number>();
  /** Renewals in flight at once, at most (the keepalive stream must answer one at a time). */
  maxConcurrentRenewals = 0;
  private renewing = 0;
  renewals: number[] = [];
  private failure: unknown = null;

  constructor(readonly store: MvccStore) {}

  failNext(error: unknown): void {
    this.failure = error;
  }

  currentRevision(): number {
    return this.store.currentRevision;
  }

  async leaseGrant(req: { id: number; ttl: number }): Promise<LeaseGrantResponse> {
    this.enter();
    const id = req.id === 0 ? this.nextId++ : req.id;
    const response = this.store.leaseGrant(id, req.ttl).response;
    this.deadlines.set(id, this.nowMs + response.ttl * 1000);
    return response;
  }

  async leaseRevoke(id: number): Promise<LeaseRevokeResponse> {
    this.enter();
    const response = this.store.leaseRevoke(id).response;
    this.deadlines.delete(id);
    return response;
  }

  async leaseKeepAlive(id: number): Promise<number> {
    this.renewing += 1;
    this.maxConcurrentRenewals = Math.max(this.maxConcurrentRenewals, this.renewing);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      this.enter();
      const ttl = this.store.leaseTimeToLive(id, false).grantedTtl;
      this.deadlines.set(id, this.nowMs + ttl * 1000);
      this.renewals.push(id);
      return ttl;
    } finally {
      this.renewing -= 1;
    }
  }

  async leaseTimeToLive(req: { id: number; keys: boolean }): Promise<LeaseTimeToLiveResponse> {
    this.enter();
    const response = this.store.leaseTimeToLive(req.id, req.keys);
    const deadline = this.deadlines.get(req.id) ?? this.nowMs;
    return { ...response, ttl: Math.max(0, Math.ceil((deadline - this.nowMs) / 1000)) };
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    this.enter();
    return this.store.leases();
  }

  private enter(): void {
    if (this.failure === null) return;
    const error = this.failure;
    this.failure = null;
    throw error;
  }
}
