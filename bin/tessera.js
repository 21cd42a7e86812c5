#!/usr/bin/env node
// The `tessera` command: the bundled CLI (dist/node/tessera.mjs, `npm run build`) when it is up to
// date with src/, else the TypeScript sources through tsx's loader.
import { distCli, distIsStale } from '../scripts/dist.mjs';

if (process.env.TESSERA_FROM_SOURCE !== '1' && !distIsStale()) {
  await import(distCli);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
