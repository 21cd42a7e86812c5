#!/usr/bin/env node
// The chaos soak matrix: every workload × every fault kind, one `npm run chaos` run each, a few at
// a time. Prints each run's `chaos:` line as it ends, writes a Markdown table to <dir>/matrix.md,
// and exits 0 only if every run passed.
//
//   npm run chaos:matrix -- --time 600 --parallel 2 [--workloads register,bank] [--nemeses kill,pause] [--seed 1000]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const WORKLOADS = ['register', 'bank', 'append', 'watch', 'lock'];
const NEMESES = ['kill', 'pause', 'partition', 'disk', 'member', 'transfer', 'clock'];
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `chaos:matrix: run \`npm run chaos\` for every workload × nemesis pair

Options:
  --time <s>          seconds per run (default 600, the soak length docs/TESTING.md asks for)
  --parallel <n>      runs at once (default 1; each run is a 3-node cluster, so 2 is the most a
                      2-core machine should take)
  --workloads <list>  comma-separated (default ${WORKLOADS.join(',')})
  --nemeses <list>    comma-separated (default ${NEMESES.join(',')})
  --seed <n>          seed of the first run; run i uses seed + i (default 1000)
  --check-timeout <s> linearizability check budget per run (default 600)
  --dir <path>        where logs and matrix.md go (default: a new temp directory)
  --help              this text

Exit code 0 only if every run printed "linearizable=yes, lost=0, duplicated=0" and exited 0.

Each run bundles the sources when it starts and its nodes run that bundle, so an edit made during
the soak reaches only the runs that start after it; for one version throughout, run the soak from
its own clone.`;

function fail(message) {
  console.error(`chaos:matrix: ${message}\n\n${HELP}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      time: { type: 'string', default: '600' },
      parallel: { type: 'string', default: '1' },
      workloads: { type: 'string', default: WORKLOADS.join(',') },
      nemeses: { type: 'string', default: NEMESES.join(',') },
      seed: { type: 'string', default: '1000' },
      'check-timeout': { type: 'string', default: '600' },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  }).values;
} catch (error) {
  fail(error.message);
}
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
function positive(name, max) {
  const n = Number(args[name]);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) fail(`--${name} must be an integer in [1, ${max}]`);
  return n;
}
function list(name, allowed) {
  const items = args[name].split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item)) fail(`unknown ${name} entry "${item}" (${allowed.join(', ')})`);
  if (items.length === 0) fail(`--${name} is empty`);
  return items;
}
const time = positive('time', 24 * 3600);
const parallel = positive('parallel', 8);
const checkTimeout = positive('check-timeout', 3600);
const seed0 = Number(args.seed);
if (!Number.isSafeInteger(seed0) || seed0 < 0) fail('--seed must be a non-negative integer');
const workloads = list('workloads', WORKLOADS);
const nemeses = list('nemeses', NEMESES);
const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'tessera-chaos-matrix-'));
mkdirSync(dir, { recursive: true });

const runs = [];
for (const nemesis of nemeses) for (const workload of workloads) runs.push({ workload, nemesis, seed: seed0 + runs.length });
console.log(`chaos:matrix: ${runs.length} runs × ${time} s, ${parallel} at a time; logs and matrix.md in ${dir}`);

const tsx = join(root, 'node_modules', '.bin', 'tsx');
const started = Date.now();

function runOne(run) {
  return new Promise((resolve) => {
    const log = join(dir, `${run.workload}-${run.nemesis}.log`);
    const out = createWriteStream(log);
    const argv = [join(root, 'src/chaos/main.ts'), '--workload', run.workload, '--nemesis', run.nemesis, '--time', String(time)];
    argv.push('--seed', String(run.seed), '--check-timeout', String(checkTimeout), '--dir', join(dir, `${run.workload}-${run.nemesis}`));
    const child = spawn(tsx, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let tail = '';
    const keep = (chunk) => {
      out.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const t0 = Date.now();
    child.on('close', (code) => {
      children.delete(child);
      out.end();
      const lines = tail.split('\n');
      const summary = lines.filter((l) => /^chaos: \d+ ops/.test(l)).pop() ?? 'chaos: no summary line';
      const ok = code === 0 && /linearizable=yes, lost=0, duplicated=0/.test(summary);
      resolve({ ...run, code, summary, ok, log, seconds: Math.round((Date.now() - t0) / 1000) });
    });
  });
}

const results = [];
const children = new Set();
function writeTable() {
  const rows = results.map(
    (r) => `| ${r.workload} | ${r.nemesis} | ${r.seed} | ${r.ok ? 'pass' : 'FAIL'} | ${r.summary.replace(/^chaos: /, '')} | ${r.seconds} |`,
  );
  const text = [
    `Chaos matrix: ${time} s per run (\`npm run chaos:matrix -- --time ${time} --parallel ${parallel}\`)`,
    '',
    '| workload | nemesis | seed | verdict | chaos line | wall s |',
    '| --- | --- | ---: | --- | --- | ---: |',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'matrix.md'), text);
}

let next = 0;
async function worker() {
  while (next < runs.length) {
    const run = runs[next++];
    const result = await runOne(run);
    results.push(result);
    writeTable();
    const mins = ((Date.now() - started) / 60_000).toFixed(1);
    console.log(`chaos:matrix: [${results.length}/${runs.length}, ${mins} min] ${run.workload} × ${run.nemesis} (seed ${run.seed}): ${result.ok ? 'PASS' : `FAIL (exit ${result.code}, log ${result.log})`} ${result.summary}`);
  }
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    next = runs.length; // start nothing new
    console.log(`chaos:matrix: ${signal}: stopping the running runs`);
    for (const child of children) child.kill('SIGINT');
  });
}
await Promise.all(Array.from({ length: parallel }, worker));
const failed = results.filter((r) => !r.ok).length;
console.log(`chaos:matrix: ${results.length} runs, ${failed} failed${interrupted ? ' (interrupted)' : ''}; table in ${join(dir, 'matrix.md')}`);
process.exit(failed > 0 || interrupted ? 1 : 0);
