// Hop timestamps for latency work: the request path calls trace(label) at each hop (a socket read,
// a turn, a WAL write, a peer write, ...). It does nothing until a sink is installed; `tessera
// start` installs one when TESSERA_TRACE_DIR is set (src/cli/trace-sink.ts), and
// bench/latency-trace.ts merges what three nodes recorded into a hop-by-hop table. The
// deterministic core (raft/, mvcc/) never calls it: the hops are in the layers that drive it.

/** Receives every traced label, with an optional detail (a message type, say). */
export type TraceSink = (label: string, detail?: string) => void;

let sink: TraceSink | null = null;

/** Records a hop when tracing is on; a branch and nothing else when it is off. */
export function trace(label: string, detail?: string): void {
  if (sink !== null) sink(label, detail);
}

/** Installs (or, with null, removes) the process's trace sink. */
export function setTraceSink(next: TraceSink | null): void {
  sink = next;
}
