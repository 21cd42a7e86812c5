// Raft core microbenchmark: a 3-node cluster in one process (MemoryStorage, messages handed over
// in memory, no faults), proposals in batches at the leader. Reports committed entries per second
// and CPU microseconds (process.cpuUsage, user + system) per committed entry, per payload size.
// The CPU is the whole cluster's (all three nodes run in this process), i.e. summed over members.
//   npm run bench:raft [-- --json] [-- --seconds S] [-- --batch B]
import { availableParallelism, cpus } from 'node:os';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng } from '../src/raft/index.ts';
import type { Message, NodeId } from '../src/raft/index.ts';

interface BenchNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

interface Row {
  payloadBytes: number;
  batch: number;
  entries: number;
  seconds: number;
  entriesPerSecond: number;
  cpuMicrosPerEntry: number;
}

/** Compact each storage once it holds this many entries past its snapshot (keeps memory flat). */
const COMPACT_EVERY = 20_000;
/** Bound on Ready rounds per batch: a batch that needs more is a livelock, not a benchmark. */
const MAX_ROUNDS_PER_BATCH = 10_000;

class BenchCluster {
  readonly nodes = new Map<NodeId, BenchNode>();
  private queue: Message[] = [];
  /** Entries applied by the leader (= committed entries handed out). */
  committed = 0;

  constructor(size: number) {
    const voters = Array.from({ length: size }, (_, i) => i + 1);
    for (const id of voters) {
      const storage = new MemoryStorage({
        voters,
        votersOutgoing: [],
        learners: [],
        learnersNext: [],
        autoLeave: false,
      });
      const raw = new RawNode(defaultRaftConfig(id, seededRng(id)), storage);
      this.nodes.set(id, { id, raw, storage, applied: 0 });
    }
  }

  node(id: NodeId): BenchNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Handles Ready everywhere and delivers messages until the cluster is quiet. */
  settle(leaderId: NodeId): void {
    for (let round = 0; round < MAX_ROUNDS_PER_BATCH; round++) {
      let busy = false;
      for (const node of this.nodes.values()) {
        while (node.raw.hasReady()) {
          busy = true;
          this.handleReady(node, node.id === leaderId);
        }
      }
      if (this.queue.length > 0) {
        busy = true;
        const messages = this.queue;
        this.queue = [];
        for (const msg of messages) this.node(msg.to).raw.step(msg);
      }
      if (!busy) return;
    }
    throw new Error('cluster did not settle');
  }

  private handleReady(node: BenchNode, isLeader: boolean): void {
    const ready = node.raw.ready();
    if (ready.snapshot !== null) node.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) node.storage.append(ready.entries);
    if (ready.hardState !== null) node.storage.setHardState(ready.hardState);
    for (const msg of ready.messages) this.queue.push(msg);
    for (const entry of ready.committedEntries) {
      if (entry.type === 'conf') throw new Error('unexpected conf change');
      node.applied = entry.index;
      if (isLeader && entry.data.length > 0) this.committed++;
    }
    node.raw.advance();
    if (node.applied - node.storage.firstIndex() > COMPACT_EVERY) {
      node.storage.createSnapshot(
        node.applied,
        { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
        new Uint8Array(0),
      );
      node.storage.compact(node.applied);
    }
  }

  elect(id: NodeId): void {
    this.node(id).raw.campaign();
    this.settle(id);
    if (this.node(id).raw.status().softState.role !== 'leader')
      throw new Error(`n${id} did not become leader`);
  }
}

function runBatches(cluster: BenchCluster, payloadBytes: number, batch: number, seconds: number): Row {
  const leader = cluster.node(1);
  const payload = new Uint8Array(payloadBytes).fill(0x61);
  const startCommitted = cluster.committed;
  const startCpu = process.cpuUsage();
  const startMs = performance.now();
  const deadlineMs = startMs + seconds * 1000;
  while (performance.now() < deadlineMs) {
    for (let i = 0; i < batch; i++) leader.raw.propose(payload);
    cluster.settle(leader.id);
  }
  const elapsedSeconds = (performance.now() - startMs) / 1000;
  const cpu = process.cpuUsage(startCpu);
  const entries = cluster.committed - startCommitted;
  return {
    payloadBytes,
    batch,
    entries,
    seconds: Number(elapsedSeconds.toFixed(3)),
    entriesPerSecond: Math.round(entries / elapsedSeconds),
    cpuMicrosPerEntry: Number(((cpu.user + cpu.system) / entries).toFixed(2)),
  };
}

function parseFlag(argv: string[], flag: string, fallback: number): number {
  const at = argv.indexOf(flag);
  if (at < 0) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag} needs a positive number`);
  return value;
}

function main(): void {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
  const seconds = parseFlag(argv, '--seconds', 3);
  const batch = parseFlag(argv, '--batch', 100);
  const rows: Row[] = [];
  for (const payloadBytes of [64, 1024]) {
    const cluster = new BenchCluster(3);
    cluster.elect(1);
    runBatches(cluster, payloadBytes, batch, Math.min(1, seconds / 3)); // warm-up (JIT), not reported
    rows.push(runBatches(cluster, payloadBytes, batch, seconds));
  }
  const machine = {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  if (json) {
    console.log(JSON.stringify({ benchmark: 'raft-core', nodes: 3, seconds, machine, rows }, null, 2));
    return;
  }
  console.log(
    `Raft core: 3 nodes in one process, MemoryStorage, no faults; ${machine.nproc} CPUs (${machine.cpu}), node ${machine.node}`,
  );
  console.log('payload   batch   committed   seconds   entries/s   CPU µs/entry');
  for (const row of rows) {
    const payload = row.payloadBytes >= 1024 ? `${row.payloadBytes / 1024} KiB` : `${row.payloadBytes} B`;
    console.log(
      `${payload.padEnd(8)}  ${String(row.batch).padStart(5)}  ${String(row.entries).padStart(10)}  ${row.seconds.toFixed(2).padStart(8)}  ` +
        `${row.entriesPerSecond.toString().padStart(10)}  ${row.cpuMicrosPerEntry.toFixed(2).padStart(13)}`,
    );
  }
}

main();
