// npm run compat:diff -- --seed S --ops N [--seeds K] [--progress]
// Longer differential runs than the default suite: K seeds from S, N ops each. Prints each
// mismatch with the op, etcd's answer and Tessera's; exits 1 if any, 2 if etcd is not installed.
import { Command } from 'commander';
import { canonical } from './compare.ts';
import type { Outcome } from './compare.ts';
import { etcdVersion } from './etcd.ts';
import { runSeed } from './session.ts';

const program = new Command('compat:diff')
  .description('run the same seeded etcd API sequence against a real etcd cluster and a Tessera cluster')
  .option('--seed <n>', 'first seed', '1')
  .option('--seeds <k>', 'how many seeds, one after another', '1')
  .option('--ops <n>', 'operations per seed', '1000')
  .option('--progress', 'print a dot every 50 ops')
  .option('--trace', 'print every op with both answers')
  .parse();

const options = program.opts<{ seed: string; seeds: string; ops: string; progress?: boolean; trace?: boolean }>();
const version = etcdVersion();
if (version === null) {
  console.log('SKIP: etcd not installed (npm run setup:tools)');
  process.exit(2);
}
const first = Number(options.seed);
const seeds = Number(options.seeds);
const opCount = Number(options.ops);
if (![first, seeds, opCount].every(Number.isSafeInteger) || seeds < 1 || opCount < 10) {
  console.error('--seed, --seeds and --ops must be integers (--ops >= 10)');
  process.exit(1);
}
console.log(`reference: ${version}`);

function clip(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 400 ? `${text.slice(0, 400)}...` : text;
}
let failed = 0;
for (let seed = first; seed < first + seeds; seed++) {
  const report = await runSeed(seed, opCount, {
    onOp: (index) => {
      if (options.progress && index % 50 === 49) process.stdout.write('.');
    },
    maxMismatches: 100,
    onTrace: options.trace
      ? (index, op, request, expected, actual) => {
          const show = (outcome: Outcome) => clip(outcome.ok ? canonical(outcome.value, null) : { error: outcome.details });
          console.log(`#${index} ${op.kind} ${clip(request === null ? null : canonical(request, null))}`);
          console.log(`  etcd:    ${show(expected)}\n  tessera: ${show(actual)}`);
        }
      : undefined,
  });
  if (options.progress) process.stdout.write('\n');
  console.log(report.text);
  if (report.mismatches.length > 0 || report.down.length > 0) failed += 1;
}
console.log(`compat:diff: ${seeds} seeds, ${failed} with mismatches`);
process.exit(failed > 0 ? 1 : 0);
