// Request/reply between peers, beside the Raft messages on the same streams: a call leaves on our
// outbound message stream to the peer (FrameKind.call), its reply comes back on the peer's outbound
// stream to us (FrameKind.reply). Used for what etcd sends over its peer HTTP API rather than Raft:
// lease keepalives and TTL lookups forwarded to the leader. Calls are not retried: a lost call or
// reply (partition, reconnect) fails at its deadline, and the caller decides what to do.
import { ChurnMap } from '../util/index.ts';
import { WireError } from './wire.ts';

export class PeerCallError extends Error {
  override name = 'PeerCallError';
  /** 'unreachable' (not sent), 'timeout' (no reply in time), 'remote' (the peer's handler threw), 'closed'. */
  constructor(
    readonly reason: 'unreachable' | 'timeout' | 'remote' | 'closed' | 'overloaded',
    message: string,
  ) {
    super(message);
  }
}

/** Answers a call from peer `from`; a thrown error is sent back and fails the call there ('remote'). */
export type CallHandler = (from: number, method: string, body: unknown) => Promise<unknown>;

export interface CallFrame {
  id: number;
  method: string;
  body: unknown;
}

export interface ReplyFrame {
  id: number;
  ok: boolean;
  /** The result, or the error message when !ok. */
  body: unknown;
}

const MAX_METHOD_CHARS = 64;

export function readCall(value: unknown): CallFrame {
  if (typeof value !== 'object' || value === null) throw new WireError('call is not an object');
  const { id, method, body } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(id) || (id as number) <= 0) throw new WireError('call: bad id');
  if (typeof method !== 'string' || method.length === 0 || method.length > MAX_METHOD_CHARS) throw new WireError('call: bad method');
  return { id: id as number, method, body };
}

export function readReply(value: unknown): ReplyFrame {
  if (typeof value !== 'object' || value === null) throw new WireError('reply is not an object');
  const { id, ok, body } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(id) || (id as number) <= 0) throw new WireError('reply: bad id');
  if (typeof ok !== 'boolean') throw new WireError('reply: bad ok flag');
  return { id: id as number, ok, body };
}

interface Pending {
  peerId: number;
  resolve: (value: unknown) => void;
  reject: (error: PeerCallError) => void;
  timer: NodeJS.Timeout;
}

/** The caller's side: ids, deadlines, and the bound on calls in flight. */
export class PendingCalls {
  /** A ChurnMap: calls come and go by the thousand a second (src/util/churn-map.ts). */
  private readonly pending = new ChurnMap<number, Pending>();
  private nextId = 1;

  constructor(private readonly maxPending: number) {}

  get size(): number {
    return this.pending.size;
  }

  /** Registers a call; `send(id)` puts it on the wire and returns false if it could not. */
  start(peerId: number, timeoutMs: number, send: (id: number) => boolean): Promise<unknown> {
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new PeerCallError('overloaded', `transport: ${this.pending.size} peer calls in flight (maxPendingCalls)`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PeerCallError('timeout', `transport: no reply from peer ${peerId.toString(16)} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { peerId, resolve, reject, timer });
      let sent = false;
      let why = `transport: peer ${peerId.toString(16)} is not connected`;
      try {
        sent = send(id);
      } catch (error) {
        why = `transport: call not sent: ${error instanceof Error ? error.message : String(error)}`;
      }
      if (!sent) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new PeerCallError('unreachable', why));
      }
    });
  }

  /** A reply arrived from `peerId`; replies to unknown (timed-out) calls and from the wrong peer are ignored. */
  settle(peerId: number, reply: ReplyFrame): void {
    const call = this.pending.get(reply.id);
    if (call === undefined || call.peerId !== peerId) return;
    this.pending.delete(reply.id);
    clearTimeout(call.timer);
    if (reply.ok) call.resolve(reply.body);
    else call.reject(new PeerCallError('remote', typeof reply.body === 'string' ? reply.body : 'peer call failed'));
  }

  failAll(message: string): void {
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(new PeerCallError('closed', message));
    }
    this.pending.clear();
  }
}
