// ReadIndex bookkeeping on the leader: requests waiting for a quorum of heartbeat acks (etcd's readOnly).
import { assert } from '../util/index.ts';
import { MAX_PENDING_READ_INDEX } from './config.ts';
import type { NodeId } from './types.ts';

/** A read request: `from` is the asking member (the leader itself for local reads). */
export interface ReadRequest {
  from: NodeId;
  context: Uint8Array;
}

export interface ReadIndexStatus {
  request: ReadRequest;
  /** The commit index when the request arrived: the read is linearizable once applied >= index. */
  index: number;
  /** Voters (and learners) that acknowledged a heartbeat carrying this context. */
  acks: Map<NodeId, boolean>;
}

/** Contexts are compared as strings; the key is a latin-1 rendering of the bytes. */
export function contextKey(context: Uint8Array): string {
  let key = '';
  for (const byte of context) key += String.fromCharCode(byte);
  return key;
}

export class ReadOnlyQueue {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Keys in arrival order; an ack for one request also confirms every earlier one. */
  private queue: string[] = [];
  readonly maxPending: number;

  constructor(maxPending: number = MAX_PENDING_READ_INDEX) {
    assert(maxPending > 0, 'maxPending must be > 0');
    this.maxPending = maxPending;
  }

  get size(): number {
    return this.queue.length;
  }

  isFull(): boolean {
    return this.queue.length >= this.maxPending;
  }

  /** Queues a request at `index`; a duplicate context is ignored (contexts must be unique). */
  addRequest(index: number, request: ReadRequest): boolean {
    const key = contextKey(request.context);
    if (this.pending.has(key)) return false;
    assert(!this.isFull(), 'read-only queue is full');
    this.pending.set(key, { request, index, acks: new Map() });
    this.queue.push(key);
    assert(this.pending.size === this.queue.length);
    return true;
  }

  /** Records an ack for `context`; returns the acks so far, or null for an unknown context. */
  recvAck(id: NodeId, context: Uint8Array): Map<NodeId, boolean> | null {
    const status = this.pending.get(contextKey(context));
    if (status === undefined) return null;
    status.acks.set(id, true);
    return status.acks;
  }

  /** Removes and returns every request up to and including `context` (they are all confirmed). */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const position = this.queue.indexOf(key);
    if (position < 0) return [];
    const done = this.queue.slice(0, position + 1);
    this.queue = this.queue.slice(position + 1);
    const statuses: ReadIndexStatus[] = [];
    for (const doneKey of done) {
      const status = this.pending.get(doneKey);
      assert(status !== undefined, 'read-only queue and map out of sync');
      statuses.push(status);
      this.pending.delete(doneKey);
    }
    return statuses;
  }

  /** Context of the newest pending request, sent with heartbeats so acks keep arriving. */
  lastPendingContext(): Uint8Array | null {
    if (this.queue.length === 0) return null;
    const status = this.pending.get(this.queue[this.queue.length - 1]);
    assert(status !== undefined);
    return status.request.context;
  }
}
