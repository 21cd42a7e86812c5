// The file sink for util/trace.ts: with TESSERA_TRACE_DIR set, a node records every traced hop as
// `<CLOCK_MONOTONIC ns> <label>[:<detail>]` in <dir>/<name>-<pid>.trace, appended every 500 ms and at
// exit. The monotonic clock is shared by every process on a machine, so the files of three nodes
// merge into one timeline (bench/latency-trace.ts). For latency studies only: it costs a little per
// hop and the files grow without bound.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTraceSink } from '../util/trace.ts';

export const TRACE_DIR_ENV = 'TESSERA_TRACE_DIR';
const FLUSH_INTERVAL_MS = 500;

/** Installs the sink when TESSERA_TRACE_DIR is set; returns the file it writes, or null. */
export function traceFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env[TRACE_DIR_ENV];
  if (dir === undefined || dir === '') return null;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${process.pid}.trace`);
  let lines: string[] = [];
  setTraceSink((label, detail) => {
    lines.push(`${process.hrtime.bigint()} ${detail === undefined ? label : `${label}:${detail}`}`);
  });
  const flush = () => {
    if (lines.length === 0) return;
    appendFileSync(file, `${lines.join('\n')}\n`);
    lines = [];
  };
  setInterval(flush, FLUSH_INTERVAL_MS).unref();
  process.on('exit', flush);
  return file;
}
