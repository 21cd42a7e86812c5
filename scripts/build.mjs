// Bundles the CLI (and the bench worker thread) into plain JavaScript under dist/node/, so nodes run
// without tsx's transpiler in every process: ~35 MiB less RSS per node and a faster start.
// npm dependencies stay external (resolved from node_modules). `npm run build`; `npm start` builds first.
//   node scripts/build.mjs [--if-stale] [--outdir dist/<name>]
//   --if-stale: skip when dist is newer than every file in src/; --outdir: another directory two levels
//   below the repository root (tests build their own copy there).
import { join } from 'node:path';
import { build } from 'esbuild';
import { distDir, distIsStale, root } from './dist.mjs';

const args = process.argv.slice(2);
if (args.includes('--if-stale') && !distIsStale()) process.exit(0);
const outdirAt = args.indexOf('--outdir');
const outdir = outdirAt >= 0 ? join(root, args[outdirAt + 1]) : distDir;
await build({
  // dist/node sits two levels below the root, as src/<layer>/ does: modules that find files with
  // `new URL('../../proto/', import.meta.url)` resolve the same from either.
  entryPoints: { tessera: join(root, 'src/cli/main.ts'), 'bench-worker': join(root, 'src/bench/worker.ts') },
  outdir,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  outExtension: { '.js': '.mjs' },
  logLevel: 'warning',
});
