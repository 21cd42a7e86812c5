// The simulated network: messages are delayed (so reordered), dropped, duplicated, or blocked by
// symmetric and one-way partitions, all decided by the seed. Time is the tick count of the cluster.
import { copyConfState } from '../raft/index.ts';
import type { Message, NodeId } from '../raft/index.ts';
import { assert } from '../util/index.ts';
import type { SimRandom } from './random.ts';

export interface NetworkFaults {
  dropPermille: number;
  duplicatePermille: number;
  /** Chance that a message arrives 1..maxDelayTicks ticks later instead of within the same tick. */
  delayPermille: number;
  maxDelayTicks: number;
  /**
   * Chance that one delivery round is shuffled. Otherwise messages due together arrive in the
   * order they were sent (per link, as over TCP) and only delays reorder them.
   */
  reorderPermille: number;
}

export const PERFECT_NETWORK: NetworkFaults = {
  dropPermille: 0,
  duplicatePermille: 0,
  delayPermille: 0,
  maxDelayTicks: 0,
  reorderPermille: 0,
};

/** Bound on messages in flight at once. A core that floods the network past it fails the seed. */
export const MAX_IN_FLIGHT_MESSAGES = 100_000;
/**
 * Messages one directed link holds in flight (a socket buffer); past it new ones are lost, as on a
 * congested link. Flow-control storms (e.g. replicate/probe flapping under reordering) stay bounded.
 */
export const LINK_CAPACITY_MESSAGES = 1024;

export interface Envelope {
  msg: Message;
  /** Incarnation of the sender when it sent: reports (snapshot status) go back only to that incarnation. */
  senderIncarnation: number;
}

export type SendOutcome = 'queued' | 'dropped' | 'blocked' | 'congested';

export class SimNetwork {
  faults: NetworkFaults;
  private readonly buckets = new Map<number, Envelope[]>();
  private inFlight = 0;
  /** Directed links that are cut: key `from * LINK_SPAN + to`. */
  private readonly blocked = new Set<number>();
  /** Messages in flight per directed link. */
  private readonly linkLoad = new Map<number, number>();
  /** A targeted schedule's adversary: messages it returns true for are lost at delivery. */
  adversary: ((msg: Message) => boolean) | null = null;

  constructor(
    private readonly rnd: SimRandom,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  /** Queue a message, or lose it. Returns how many copies were queued (0, 1 or 2) via the outcome. */
  send(msg: Message, senderIncarnation: number, now: number): { outcome: SendOutcome; copies: number } {
    if (this.isBlocked(msg.from, msg.to)) return { outcome: 'blocked', copies: 0 };
    if (this.rnd.chance(this.faults.dropPermille)) return { outcome: 'dropped', copies: 0 };
    if ((this.linkLoad.get(linkKey(msg.from, msg.to)) ?? 0) >= LINK_CAPACITY_MESSAGES)
      return { outcome: 'congested', copies: 0 };
    const copies = this.rnd.chance(this.faults.duplicatePermille) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.enqueue({ msg: copyMessage(msg), senderIncarnation }, now + this.delay());
    }
    return { outcome: 'queued', copies };
  }

  /** Removes and returns the messages due at `now`, in send order (or shuffled, as a fault). */
  takeDue(now: number): Envelope[] {
    const bucket = this.buckets.get(now);
    if (bucket === undefined) return [];
    this.buckets.delete(now);
    this.inFlight -= bucket.length;
    for (const envelope of bucket) this.unload(envelope.msg);
    return this.rnd.chance(this.faults.reorderPermille) ? this.rnd.shuffle(bucket) : bucket;
  }

  /** Messages still due at `now` after the last delivery round wait for the next tick. */
  postpone(now: number): void {
    const bucket = this.buckets.get(now);
    if (bucket === undefined) return;
    this.buckets.delete(now);
    const later = this.buckets.get(now + 1);
    if (later === undefined) this.buckets.set(now + 1, bucket);
    else later.push(...bucket);
  }

  /** A crash loses whatever the node had sent that is still in flight. Returns how many were lost. */
  dropFrom(nodeId: NodeId): number {
    let lost = 0;
    for (const [at, bucket] of this.buckets) {
      const kept = bucket.filter((envelope) => {
        if (envelope.msg.from !== nodeId) return true;
        this.unload(envelope.msg);
        return false;
      });
      lost += bucket.length - kept.length;
      if (kept.length === 0) this.buckets.delete(at);
      else this.buckets.set(at, kept);
    }
    this.inFlight -= lost;
    return lost;
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(linkKey(from, to));
  }

  /** Whether a message due now is lost instead: its link is cut or the adversary takes it. */
  intercepts(msg: Message): boolean {
    return this.isBlocked(msg.from, msg.to) || (this.adversary !== null && this.adversary(msg));
  }

  /** Cut `from → to` (one direction only). */
  block(from: NodeId, to: NodeId): void {
    assert(from !== to, 'a node cannot be partitioned from itself');
    this.blocked.add(linkKey(from, to));
  }

  /** Symmetric partition: no message crosses between `left` and `right`. */
  split(left: readonly NodeId[], right: readonly NodeId[]): void {
    for (const a of left) {
      for (const b of right) {
        this.block(a, b);
        this.block(b, a);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  private delay(): number {
    if (this.faults.maxDelayTicks <= 0 || !this.rnd.chance(this.faults.delayPermille)) return 0;
    return this.rnd.range(1, this.faults.maxDelayTicks);
  }

  private enqueue(envelope: Envelope, at: number): void {
    assert(
      this.inFlight < MAX_IN_FLIGHT_MESSAGES,
      () => `more than ${MAX_IN_FLIGHT_MESSAGES} messages in flight`,
    );
    const bucket = this.buckets.get(at);
    if (bucket === undefined) this.buckets.set(at, [envelope]);
    else bucket.push(envelope);
    this.inFlight++;
    const link = linkKey(envelope.msg.from, envelope.msg.to);
    this.linkLoad.set(link, (this.linkLoad.get(link) ?? 0) + 1);
  }

  private unload(msg: Message): void {
    const link = linkKey(msg.from, msg.to);
    const load = this.linkLoad.get(link) ?? 0;
    assert(load > 0, () => `link ${msg.from}->${msg.to} unloaded below zero`);
    if (load === 1) this.linkLoad.delete(link);
    else this.linkLoad.set(link, load - 1);
  }
}

/** Node ids stay far below this (the sim allocates them sequentially). */
const LINK_SPAN = 1 << 16;

function linkKey(from: NodeId, to: NodeId): number {
  return from * LINK_SPAN + to;
}

/**
 * What a real network does to a message: the receiver gets its own copy. Entries and snapshot
 * objects are copied one level deep; byte payloads are shared (nobody mutates them).
 */
export function copyMessage(msg: Message): Message {
  switch (msg.type) {
    case 'app':
    case 'prop':
      return { ...msg, entries: msg.entries.map((entry) => ({ ...entry })) };
    case 'snap':
      return {
        ...msg,
        snapshot: {
          data: msg.snapshot.data,
          metadata: { ...msg.snapshot.metadata, confState: copyConfState(msg.snapshot.metadata.confState) },
        },
      };
    default:
      return { ...msg };
  }
}


