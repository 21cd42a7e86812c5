// Where the bundled CLI lives and whether it is older than the sources (no esbuild import: bin/tessera.js
// asks on every start).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const distDir = join(root, 'dist', 'node');
export const distCli = join(distDir, 'tessera.mjs');
export const distOutputs = [distCli, join(distDir, 'bench-worker.mjs')];

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** True when a bundle is missing or some file under src/ changed after it was built. */
export function distIsStale() {
  try {
    const built = Math.min(...distOutputs.map((file) => statSync(file).mtimeMs));
    return newestMtime(join(root, 'src')) > built;
  } catch {
    return true;
  }
}
