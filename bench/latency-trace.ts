// Where one client's put spends its time, hop by hop, across the three nodes: starts a fresh
// `tessera dev` with TESSERA_TRACE_DIR set (every node records its request-path hops with the
// machine's monotonic clock, src/cli/trace-sink.ts), runs one client against the leader (or a
// follower), merges the nodes' traces into one timeline, cuts it into requests (from that node
// reading the request to it writing the response) and prints every hop's median time across all
// requests, then the most common whole sequence of hops with the median time of each step.
//   npx tsx bench/latency-trace.ts [--duration S] [--target leader|follower] [--port P] [--keep]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { configFromFlags, findTarget, formatResult, runBench } from '../src/bench/index.ts';
import { startTessera } from './compare/clusters.ts';

const args = process.argv.slice(2);
const value = (flag: string) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const duration = Number(value('--duration') ?? 5);
const target = value('--target') ?? 'leader';
if (target !== 'leader' && target !== 'follower') throw new Error('--target leader|follower');
const root = mkdtempSync(join(tmpdir(), 'tessera-latency-trace-'));
const traceDir = join(root, 'trace');

interface Hop {
  ns: bigint;
  node: string;
  label: string;
}

const cluster = await startTessera(join(root, 'data'), Number(value('--port') ?? 2479), { TESSERA_TRACE_DIR: traceDir });
/** The node the client talks to. */
let entryNode = '';
try {
  const entry = await findTarget(cluster.endpoints, target);
  if (entry === null) throw new Error(`no ${target} found`);
  entryNode = `node${cluster.endpoints.indexOf(entry) + 1}`;
  const config = configFromFlags('put', { endpoints: entry, clients: 1, conns: 1, duration, warmup: 1 });
  console.log(formatResult(await runBench(config, { progress: false })));
} finally {
  await cluster.stop();
}

const hops: Hop[] = [];
for (const file of readdirSync(traceDir)) {
  const node = basename(file).split('-')[0];
  for (const line of readFileSync(join(traceDir, file), 'utf8').split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) hops.push({ ns: BigInt(line.slice(0, space)), node, label: line.slice(space + 1) });
  }
}
hops.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));

// Requests: from the entry node's read of a request to its next write to the client.
const requests: Hop[][] = [];
let open: Hop[] | null = null;
for (const hop of hops) {
  if (open === null) {
    if (hop.node === entryNode && hop.label === 'h2.read') open = [hop];
    continue;
  }
  open.push(hop);
  if (hop.node === entryNode && hop.label === 'h2.write') {
    requests.push(open);
    open = null;
  }
}
if (requests.length === 0) throw new Error(`no complete request in the traces (${hops.length} hops; kept in ${root})`);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const micros = (a: Hop, b: Hop) => Number(b.ns - a.ns) / 1000;
const key = (request: Hop[]) => request.map((h) => `${h.node} ${h.label}`).join('|');
const bySequence = new Map<string, Hop[][]>();
for (const request of requests) {
  const k = key(request);
  bySequence.set(k, [...(bySequence.get(k) ?? []), request]);
}
console.log(`\n${target} ${entryNode}; ${requests.length} requests traced, median ${target} read → response write ${median(requests.map((r) => micros(r[0], r[r.length - 1]))).toFixed(0)} µs`);

// Every hop over all requests (its first occurrence in each): on a busy machine the most common
// whole sequence can be a handful of requests, so the table is built hop by hop. "since read" is
// from the entry node's read of the request; "on node" is from the same node's hop before it in
// that request (blank for a node's first hop), which is where that node's own time goes.
const byHop = new Map<string, { since: number[]; onNode: number[] }>();
for (const request of requests) {
  const seen = new Set<string>();
  const lastOnNode = new Map<string, Hop>();
  for (const hop of request) {
    const k = `${hop.node} ${hop.label}`;
    const before = lastOnNode.get(hop.node);
    lastOnNode.set(hop.node, hop);
    if (seen.has(k)) continue;
    seen.add(k);
    const stats = byHop.get(k) ?? { since: [], onNode: [] };
    stats.since.push(micros(request[0], hop));
    if (before !== undefined) stats.onNode.push(micros(before, hop));
    byHop.set(k, stats);
  }
}
const rowsByTime = [...byHop]
  .filter(([, stats]) => stats.since.length * 10 >= requests.length) // in at least 10% of the requests
  .map(([k, stats]) => ({ k, count: stats.since.length, since: median(stats.since), onNode: stats.onNode.length > 0 ? median(stats.onNode) : null }))
  .sort((a, b) => a.since - b.since);
console.log('every hop seen in at least 10% of the requests (its first time in each), by median µs since the request was read:');
console.log(`${'since read'.padStart(10)} ${'on node'.padStart(8)} ${'requests'.padStart(9)}  hop`);
for (const row of rowsByTime) {
  const onNode = row.onNode === null ? '' : `+${row.onNode.toFixed(0)}`;
  console.log(`${row.since.toFixed(0).padStart(10)} ${onNode.padStart(8)} ${String(row.count).padStart(9)}  ${row.k}`);
}

const [, common] = [...bySequence].sort((a, b) => b[1].length - a[1].length)[0];
console.log(`\nmost common sequence (${common.length} of ${requests.length} requests), median µs since the request was read and since the hop before:`);
for (let i = 0; i < common[0].length; i++) {
  const since = median(common.map((r) => micros(r[0], r[i])));
  const step = i === 0 ? 0 : median(common.map((r) => micros(r[i - 1], r[i])));
  console.log(`${since.toFixed(0).padStart(8)} ${`+${step.toFixed(0)}`.padStart(7)}  ${common[0][i].node} ${common[0][i].label}`);
}
if (args.includes('--keep')) console.log(`\ntraces kept in ${traceDir}`);
else rmSync(root, { recursive: true, force: true });
