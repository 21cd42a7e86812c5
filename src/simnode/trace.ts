// The whole-node simulation's event log: a ring of the latest events (shown when a seed fails), a
// running hash of every event (the determinism fingerprint) and an optional live sink (--verbose).
import type { Message } from '../raft/index.ts';
import { formatMessage, Ring, TraceHash } from '../sim/index.ts';

export type EventKind =
  | 'deliver'
  | 'drop'
  | 'crash'
  | 'restart'
  | 'pause'
  | 'resume'
  | 'partition'
  | 'heal'
  | 'invoke'
  | 'complete'
  | 'leader'
  | 'commit'
  | 'snapshot'
  | 'transfer'
  | 'member'
  | 'phase'
  | 'lease';

const KIND_CODES: Record<EventKind, number> = {
  deliver: 1,
  drop: 2,
  crash: 3,
  restart: 4,
  pause: 5,
  resume: 6,
  partition: 7,
  heal: 8,
  invoke: 9,
  complete: 10,
  leader: 11,
  commit: 12,
  snapshot: 13,
  transfer: 14,
  member: 15,
  phase: 16,
  lease: 17,
};

const MESSAGE_CODES: Record<Message['type'], number> = {
  app: 1,
  appResp: 2,
  vote: 3,
  voteResp: 4,
  preVote: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  timeoutNow: 10,
  prop: 11,
  readIndex: 12,
  readIndexResp: 13,
  transferLeader: 14,
  durable: 15,
};

interface TraceEvent {
  ms: number;
  kind: EventKind;
  node: number;
  note: string;
  msg: Message | null;
}

/** How many of the latest events a failure report can show. */
export const TRACE_RING_SIZE = 512;

export class Trace {
  /** Simulated time of the events recorded next. */
  ms = 0;
  private readonly ring = new Ring<TraceEvent>(TRACE_RING_SIZE);
  private readonly fingerprint = new TraceHash();
  private count = 0;

  /** Events kept from a window of simulated time (a replay that shows what led to a failure). */
  private readonly window: { fromMs: number; toMs: number; lines: string[] } | null;

  constructor(
    private readonly sink: ((line: string) => void) | null,
    window: { fromMs: number; toMs: number } | null = null,
  ) {
    this.window = window === null ? null : { ...window, lines: [] };
  }

  /** The window's events (heartbeats left out), oldest first. */
  windowLines(): string[] {
    return this.window?.lines ?? [];
  }

  get eventCount(): number {
    return this.count;
  }

  /** `note` feeds the hash too, so keep it cheap (it is built for every event of that kind). */
  record(kind: EventKind, node: number, note = '', msg: Message | null = null): void {
    this.mix(KIND_CODES[kind]);
    this.mix(this.ms);
    this.mix(node);
    if (note !== '') this.mixString(note);
    if (msg !== null) this.mixMessage(msg);
    const event: TraceEvent = { ms: this.ms, kind, node, note, msg };
    this.ring.push(event);
    this.count++;
    if (this.sink !== null) this.sink(formatEvent(event));
    const window = this.window;
    if (window !== null && this.ms >= window.fromMs && this.ms <= window.toMs && telling(event) && window.lines.length < MAX_WINDOW_LINES) {
      window.lines.push(formatEvent(event));
    }
  }

  mix(value: number): void {
    this.fingerprint.mix(value);
  }

  mixString(text: string): void {
    this.fingerprint.mixString(text);
  }

  hash(): string {
    return this.fingerprint.hex();
  }

  /**
   * The latest `limit` events, formatted, oldest first, without heartbeats (they are most of the
   * traffic of a quiet cluster and say little; --verbose shows every event).
   */
  last(limit: number): string[] {
    const kept = this.ring.ordered().filter(telling);
    return kept.slice(Math.max(0, kept.length - limit)).map(formatEvent);
  }

  private mixMessage(msg: Message): void {
    this.mix(MESSAGE_CODES[msg.type]);
    this.mix(msg.from);
    this.mix(msg.to);
    this.mix(msg.term);
    if ('index' in msg) this.mix(msg.index);
    if ('commit' in msg) this.mix(msg.commit);
    if ('reject' in msg) this.mix(msg.reject ? 1 : 0);
    if (msg.type === 'app' || msg.type === 'prop') this.mix(msg.entries.length);
  }
}

/** Bound on the lines a replay window keeps. */
const MAX_WINDOW_LINES = 100_000;

function telling(event: TraceEvent): boolean {
  return event.msg === null || (event.msg.type !== 'heartbeat' && event.msg.type !== 'heartbeatResp');
}

function formatEvent(event: TraceEvent): string {
  const where = event.node === 0 ? '' : ` n${event.node}`;
  const body = event.msg !== null ? ` ${formatMessage(event.msg)}` : '';
  return `[${event.ms}ms] ${event.kind}${where}${body}${event.note === '' ? '' : ` ${event.note}`}`;
}
