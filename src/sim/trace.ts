// The simulation's event log: a fixed-size ring of the latest events (printed when a seed fails),
// a running hash of every event (the determinism fingerprint), and an optional live sink (--verbose).
import type { Message } from '../raft/index.ts';
import { Ring, TraceHash } from './trace-core.ts';

export type EventKind =
  | 'deliver'
  | 'drop'
  | 'duplicate'
  | 'crash'
  | 'restart'
  | 'shutdown'
  | 'partition'
  | 'heal'
  | 'propose'
  | 'proposeDropped'
  | 'read'
  | 'readServed'
  | 'transfer'
  | 'campaign'
  | 'confChange'
  | 'confApplied'
  | 'snapshot'
  | 'snapshotApplied'
  | 'leader'
  | 'commit'
  | 'phase'
  | 'join';

const KIND_CODES: Record<EventKind, number> = {
  deliver: 1,
  drop: 2,
  duplicate: 3,
  crash: 4,
  restart: 5,
  shutdown: 6,
  partition: 7,
  heal: 8,
  propose: 9,
  proposeDropped: 10,
  read: 11,
  readServed: 12,
  transfer: 13,
  campaign: 14,
  confChange: 15,
  confApplied: 16,
  snapshot: 17,
  snapshotApplied: 18,
  leader: 19,
  commit: 20,
  phase: 21,
  join: 22,
};

export interface TraceEvent {
  step: number;
  kind: EventKind;
  /** The node the event happened at (0 when none). */
  node: number;
  /** Two event-specific numbers (term, index, id, …); they feed the hash. */
  a: number;
  b: number;
  /** Human-readable detail, built only for events that are rare (never per message). */
  note: string;
  msg: Message | null;
}

/** Ring size: how many of the latest events a failure report can show. */
export const TRACE_RING_SIZE = 256;

export class Trace {
  step = 0;
  private readonly ring = new Ring<TraceEvent>(TRACE_RING_SIZE);
  private readonly fingerprint = new TraceHash();
  private count = 0;

  constructor(private readonly sink: ((line: string) => void) | null = null) {}

  get eventCount(): number {
    return this.count;
  }

  record(kind: EventKind, node: number, a: number, b: number, note = '', msg: Message | null = null): void {
    this.mix(KIND_CODES[kind]);
    this.mix(this.step);
    this.mix(node);
    this.mix(a);
    this.mix(b);
    if (msg !== null) this.mixMessage(msg);
    const event: TraceEvent = { step: this.step, kind, node, a, b, note, msg };
    this.ring.push(event);
    this.count++;
    if (this.sink !== null) this.sink(formatEvent(event));
  }

  /** Fold extra state (e.g. the final applied sequence) into the fingerprint. */
  mix(value: number): void {
    this.fingerprint.mix(value);
  }

  hash(): string {
    return this.fingerprint.hex();
  }

  /** The latest `limit` events, oldest first. */
  last(limit: number): TraceEvent[] {
    const ordered = this.ring.ordered();
    return ordered.slice(Math.max(0, ordered.length - limit));
  }

  private mixMessage(msg: Message): void {
    this.mix(msg.from);
    this.mix(msg.to);
    this.mix(msg.term);
    switch (msg.type) {
      case 'app':
        this.mix(msg.index);
        this.mix(msg.logTerm);
        this.mix(msg.entries.length);
        this.mix(msg.commit);
        break;
      case 'appResp':
        this.mix(msg.index);
        this.mix(msg.reject ? 1 : 0);
        break;
      case 'vote':
      case 'preVote':
        this.mix(msg.index);
        this.mix(msg.logTerm);
        break;
      case 'voteResp':
      case 'preVoteResp':
        this.mix(msg.reject ? 1 : 0);
        break;
      case 'heartbeat':
        this.mix(msg.commit);
        break;
      case 'snap':
        this.mix(msg.snapshot.metadata.index);
        break;
      default:
        break;
    }
  }
}

export function formatMessage(msg: Message): string {
  const head = `${msg.type} ${msg.from}->${msg.to} t${msg.term}`;
  switch (msg.type) {
    case 'app': {
      const last = msg.entries.length > 0 ? msg.entries[msg.entries.length - 1] : null;
      const span = last === null ? '' : ` ents=[${msg.entries[0].index}..${last.index}]@t${last.term}`;
      return `${head} prev=${msg.index}@t${msg.logTerm}${span} commit=${msg.commit}`;
    }
    case 'appResp':
      return `${head} index=${msg.index}${msg.reject ? ` REJECT hint=${msg.rejectHint}@t${msg.logTerm}` : ''}`;
    case 'vote':
    case 'preVote':
      return `${head} last=${msg.index}@t${msg.logTerm}${msg.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${msg.reject ? 'REJECT' : 'grant'}`;
    case 'heartbeat':
      return `${head} commit=${msg.commit}${msg.context.length > 0 ? ' ctx' : ''}`;
    case 'snap':
      return `${head} snap=${msg.snapshot.metadata.index}@t${msg.snapshot.metadata.term}`;
    case 'prop':
      return `${head} n=${msg.entries.length}`;
    case 'readIndexResp':
    case 'durable':
      return `${head} index=${msg.index}`;
    case 'transferLeader':
      return `${head} to=${msg.transferee}`;
    case 'heartbeatResp':
    case 'timeoutNow':
    case 'readIndex':
      return head;
  }
}

/** The numbers of frequent events, spelled out (rare events carry a note instead). */
function describeNumbers(event: TraceEvent): string {
  switch (event.kind) {
    case 'propose':
    case 'proposeDropped':
      return `w${event.a}`;
    case 'read':
      return `r${event.a}`;
    case 'readServed':
      return `r${event.a} at read index ${event.b}`;
    case 'transfer':
      return `to n${event.a}`;
    case 'crash':
      return `down for ${event.b} ticks`;
    case 'join':
      return `added at index ${event.a}`;
    default:
      return '';
  }
}

export function formatEvent(event: TraceEvent): string {
  const where = event.node === 0 ? '' : ` n${event.node}`;
  const body = event.msg !== null ? ` ${formatMessage(event.msg)}` : '';
  const numbers = describeNumbers(event);
  const detail = [numbers, event.note].filter((part) => part !== '').join(' ');
  return `[${event.step}] ${event.kind}${where}${body}${detail === '' ? '' : ` ${detail}`}`;
}
