// Shared fixtures for transport tests: transports on 127.0.0.1:0, a message collector, a log
// capture, one sample of every Raft message type, and a polling wait.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Entry, Message } from '../../src/raft/index.ts';
import { Transport } from '../../src/transport/index.ts';
import type { TransportLimits, TransportTlsOptions } from '../../src/transport/index.ts';

export const CLUSTER = 'test-cluster';

/** Limits that make reconnects fast enough for tests. */
export const FAST: Partial<TransportLimits> = {
  backoffMinMs: 10,
  backoffMaxMs: 50,
  dialTimeoutMs: 500,
  handshakeTimeoutMs: 1000,
};

export interface Received {
  groupId: number;
  msg: Message;
}

export interface Node {
  transport: Transport;
  received: Received[];
  unreachable: number[];
  snapshotStatus: { groupId: number; peerId: number; status: string }[];
  logs: LogCapture;
}

export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger: Logger;
  constructor() {
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString().split('\n')) if (line) this.lines.push(JSON.parse(line));
        done();
      },
    });
    this.logger = pino({ level: 'debug' }, sink);
  }
  events(): string[] {
    return this.lines.map((l) => String(l.event));
  }
}

export async function startNode(
  nodeId: number,
  options: {
    port?: number;
    clusterId?: string;
    limits?: Partial<TransportLimits>;
    tls?: TransportTlsOptions;
  } = {},
): Promise<Node> {
  const logs = new LogCapture();
  const transport = new Transport({
    nodeId,
    clusterId: options.clusterId ?? CLUSTER,
    listenHost: '127.0.0.1',
    listenPort: options.port ?? 0,
    logger: logs.logger,
    limits: { ...FAST, ...options.limits },
    tls: options.tls,
  });
  const node: Node = { transport, received: [], unreachable: [], snapshotStatus: [], logs };
  transport.onMessage((groupId, msg) => node.received.push({ groupId, msg }));
  transport.onUnreachable((peerId) => node.unreachable.push(peerId));
  transport.onSnapshotStatus((groupId, peerId, status) =>
    node.snapshotStatus.push({ groupId, peerId, status }),
  );
  await transport.start();
  return node;
}

/** Tells each node about all the others. */
export function connectAll(nodes: Node[]): void {
  const peers = nodes.map((n) => ({ id: n.transport.nodeId, host: '127.0.0.1', port: n.transport.port }));
  for (const node of nodes) node.transport.setPeers(peers);
}

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `from` has a live message stream to every peer it knows. */
export async function waitConnected(node: Node, peers: number): Promise<void> {
  await waitFor(
    `node ${node.transport.nodeId} connected to ${peers} peers`,
    () => node.transport.stats().connectedPeers === peers,
  );
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);
const entry = (index: number, data: Uint8Array, type: Entry['type'] = 'normal'): Entry => ({
  term: 3,
  index,
  type,
  data,
});

/** One message of every type from node `from` to node `to`, with non-trivial bytes everywhere. */
export function everyMessageType(from: number, to: number): Message[] {
  const base = { from, to, term: 7 };
  return [
    {
      ...base,
      type: 'app',
      logTerm: 6,
      index: 41,
      commit: 40,
      entries: [
        entry(42, bytes(1, 2, 3)),
        entry(43, bytes(), 'conf'),
        entry(44, new Uint8Array(5000).fill(9)),
      ],
    },
    { ...base, type: 'appResp', index: 44, reject: true, rejectHint: 12, logTerm: 5 },
    { ...base, type: 'vote', logTerm: 6, index: 44, transfer: false },
    { ...base, type: 'preVote', term: 8, logTerm: 6, index: 44, transfer: true },
    { ...base, type: 'voteResp', reject: false },
    { ...base, type: 'preVoteResp', reject: true },
    { ...base, type: 'heartbeat', commit: 44, context: bytes(0xde, 0xad) },
    { ...base, type: 'heartbeatResp', context: bytes() },
    { ...base, type: 'timeoutNow' },
    { ...base, term: 0, type: 'prop', entries: [entry(0, bytes(7, 7, 7))] },
    { ...base, term: 0, type: 'readIndex', context: bytes(1) },
    { ...base, type: 'readIndexResp', index: 44, context: bytes(1) },
    { ...base, type: 'transferLeader', transferee: 3 },
    { ...base, type: 'durable', index: 44 },
    {
      ...base,
      type: 'snap',
      snapshot: {
        metadata: {
          index: 100,
          term: 6,
          confState: {
            voters: [1, 2, 3],
            votersOutgoing: [1, 2],
            learners: [4],
            learnersNext: [],
            autoLeave: true,
          },
        },
        data: bytes(5, 4, 3, 2, 1),
      },
    },
  ];
}

/** Deep copy with every Uint8Array/Buffer turned into a plain Uint8Array, for deepEqual across Buffer/Uint8Array. */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}
