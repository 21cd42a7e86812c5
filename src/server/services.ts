// The node's side of etcd's Maintenance, Cluster and Watch services (the API layer decodes and
// encodes; these answer from the replicas).
import type { ClusterBackend, MaintenanceBackend, MemberListResult, StatusResult, WatchBackend } from '../api/index.ts';
import type { MvccStore, WatchEvent, WatchHandle, WatchOptions, WatchSink, WatchState } from '../mvcc/index.ts';
import type { TesseraNode } from './node.ts';
import type { Replica } from './replica.ts';

/** The version etcdctl and clients see; Tessera implements the etcd 3.4 API. */
export const ETCD_API_VERSION = '3.4.0';

function firstReplica(node: TesseraNode): Replica {
  return node.replicaFor(node.rangeTable.all()[0].groupId);
}

export class MaintenanceService implements MaintenanceBackend {
  constructor(private readonly node: TesseraNode) {}

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
      errors: [],
      isLearner: replica.confState.learners.includes(this.node.id),
    };
  }
}

export class ClusterService implements ClusterBackend {
  constructor(private readonly node: TesseraNode) {}

  async memberList(): Promise<MemberListResult> {
    const learners = new Set(firstReplica(this.node).confState.learners);
    return {
      members: this.node.meta.members.map((m) => ({
        id: String(m.id),
        name: m.name,
        peerURLs: m.peerUrls,
        clientURLs: m.clientUrls,
        isLearner: learners.has(m.id),
      })),
    };
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
