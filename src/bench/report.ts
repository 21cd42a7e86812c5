// Human-readable output of one benchmark run (the --json output is the BenchResult itself).
import type { LatencySummary } from './histogram.ts';
import type { BenchResult } from './runner.ts';

function latencyLine(label: string, latency: LatencySummary): string {
  const f = (ms: number) => ms.toFixed(3);
  return (
    `${label.padEnd(14)} p50 ${f(latency.p50Ms)}  p90 ${f(latency.p90Ms)}  p99 ${f(latency.p99Ms)}  ` +
    `p99.9 ${f(latency.p999Ms)}  max ${f(latency.maxMs)}  mean ${f(latency.meanMs)} ms  (n=${latency.count})`
  );
}

export function formatResult(result: BenchResult): string {
  const s = result.settings;
  const lines = [
    `workload ${result.workload}  endpoints ${result.endpoints.join(',')}`,
    `conns ${s.conns}  clients ${s.clients}  workers ${s.workers}  key-size ${s.keySize}  val-size ${s.valSize}  ` +
      `key-space ${s.keySpace} (${s.distribution})  codec ${s.codec}` +
      (s.rate === null ? '' : `  rate ${s.rate}/s`),
    `ops ${result.ops}  errors ${result.errors}  in ${result.elapsedSec.toFixed(2)} s  =>  ${result.opsPerSec.toFixed(1)} ops/s`,
    latencyLine('latency', result.latency),
  ];
  if (result.read) lines.push(latencyLine('  read', result.read));
  if (result.write) lines.push(latencyLine('  write', result.write));
  if (result.load) lines.push(`keys ${result.load.keys} in Txns of ${result.load.batch} puts  =>  ${result.load.keysPerSec.toFixed(1)} keys/s`);
  if (result.txn) lines.push(`cas succeeded ${result.txn.succeeded}  failed (conflict) ${result.txn.failed}`);
  if (result.watch) {
    lines.push(
      `watchers ${result.watch.watchers}  events ${result.watch.events}  =>  ${result.watch.eventsPerSec.toFixed(1)} events/s` +
        `  (client CPU ${result.watch.clientCpuUsPerEvent.toFixed(2)} µs per event)`,
    );
    lines.push(latencyLine('put-to-event', result.watch.eventLatency));
  }
  lines.push(`client CPU ${result.client.cpuSec.toFixed(2)} s  (${result.client.cpuUsPerOp.toFixed(1)} µs per op)`);
  for (const [kind, count] of Object.entries(result.errorKinds)) lines.push(`error x${count}: ${kind}`);
  return lines.join('\n');
}
