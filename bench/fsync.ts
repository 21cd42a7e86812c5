// What one durable append costs on this disk: a WAL-style write + fdatasync into a preallocated file,
// the O_DSYNC writes of Tessera's write-ahead log (at offsets in a segment created at its full size,
// as since session 10, and appended to a growing file, as before), and an LMDB commit of the same
// bytes, classic and with lmdb-js's overlappingSync. Each write is awaited before the next (the
// latency a single client sees). Three copies at once show the three nodes of a dev cluster:
//   npx tsx bench/fsync.ts [--writes N] [--bytes B] [--dir D]
//   for i in 1 2 3; do npx tsx bench/fsync.ts --only dsync & done; wait
import { closeSync, constants, fdatasyncSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';

const args = process.argv.slice(2);
const option = (flag: string, fallback: string) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : fallback;
};
const writes = Number(option('--writes', '1000'));
const bytes = Number(option('--bytes', '300'));
const only = option('--only', '');
const dir = mkdtempSync(join(option('--dir', tmpdir()), 'tessera-fsync-'));

function report(name: string, samples: number[]): void {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(3);
  console.log(`${name.padEnd(26)} p50 ${at(0.5)}  p90 ${at(0.9)}  p99 ${at(0.99)} ms`);
}

/**
 * `writes` records of `bytes`, each durable before the next: with a write then fdatasync, or with
 * O_DSYNC writes; at offsets in a sparse file of 64 MiB (preallocated, as etcd's WAL segments and
 * Tessera's since session 10 are) or appended to an empty one (Tessera's log until session 10).
 */
function durableWrites(how: 'fdatasync' | 'dsync', preallocated: boolean): number[] {
  const flags = constants.O_WRONLY | constants.O_CREAT | (how === 'dsync' ? constants.O_DSYNC : 0) | (preallocated ? 0 : constants.O_APPEND);
  const fd = openSync(join(dir, `${how}-${preallocated}`), flags, 0o600);
  if (preallocated) {
    ftruncateSync(fd, 64 << 20);
    fdatasyncSync(fd);
  }
  const record = Buffer.alloc(bytes, 1);
  const samples: number[] = [];
  for (let i = 0, pos = 0; i < writes; i++, pos += bytes) {
    const started = performance.now();
    if (preallocated) writeSync(fd, record, 0, bytes, pos);
    else writeSync(fd, record);
    if (how === 'fdatasync') fdatasyncSync(fd);
    samples.push(performance.now() - started);
  }
  closeSync(fd);
  return samples;
}

async function lmdb(overlappingSync: boolean): Promise<number[]> {
  const env = open(join(dir, `lmdb-${overlappingSync}`), { noSync: false, overlappingSync });
  const db = env.openDB<Buffer, Buffer>('log', { encoding: 'binary', keyEncoding: 'binary' });
  const value = Buffer.alloc(bytes, 1);
  const samples: number[] = [];
  for (let i = 0; i < writes; i++) {
    const key = Buffer.alloc(8);
    key.writeUInt32BE(i, 4);
    const started = performance.now();
    await Promise.all([db.put(key, value), env.flushed]);
    samples.push(performance.now() - started);
  }
  await env.close();
  return samples;
}

try {
  console.log(`${writes} durable appends of ${bytes} bytes in ${dir}`);
  if (only === '' || only === 'dsync') {
    report('O_DSYNC, appended', durableWrites('dsync', false));
    report('O_DSYNC, preallocated', durableWrites('dsync', true));
  }
  if (only === '') {
    report('fdatasync, preallocated', durableWrites('fdatasync', true));
    report('LMDB commit (classic)', await lmdb(false));
    report('LMDB commit (overlapping)', await lmdb(true));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
