// The bundled CLI (scripts/build.mjs, what `npm start` runs): it builds, its `dev` starts nodes that
// run the bundle too (not tsx), they serve an etcd client, and `bench` finds its bundled worker thread.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';

const root = fileURLToPath(new URL('../../', import.meta.url));
const outdirName = `dist/test-${process.pid}`;
const outdir = join(root, outdirName);
const cli = join(outdir, 'tessera.mjs');

describe('the bundled CLI', { timeout: 120_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-bundle-'));
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(outdir, { recursive: true, force: true });
  });

  it('builds, runs a dev cluster from the bundle, and benches with the bundled worker', async () => {
    const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--outdir', outdirName], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    assert.ok(existsSync(cli) && existsSync(join(outdir, 'bench-worker.mjs')));

    const port = 14579;
    const proc = spawn(process.execPath, [cli, 'dev', '--nodes', '1', '--data-dir', dataDir, '--port', String(port), '--unsafe-no-fsync'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line in 60 s:\n${out}`)), 60_000);
        const onData = (chunk: Buffer) => {
          out += chunk.toString();
          if (/^ready: endpoints=/m.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.once('exit', (code) => reject(new Error(`dev exited with ${code}:\n${out}`)));
      });
      // The node is a child running the bundle itself, without tsx's loader.
      const children = spawnSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      assert.equal(children.length, 1, 'one node process');
      const cmdline = readFileSync(`/proc/${children[0]}/cmdline`, 'utf8').split('\0');
      assert.ok(cmdline.includes(cli) && !cmdline.includes('tsx'), `node runs the bundle: ${cmdline.join(' ')}`);

      const client = new Etcd3({ hosts: `http://127.0.0.1:${port}` });
      await client.put('bundled').value('yes');
      assert.equal(await client.get('bundled').string(), 'yes');
      client.close();

      const bench = spawnSync(process.execPath, [cli, 'bench', 'put', '--endpoints', `127.0.0.1:${port}`, '--total', '200', '--clients', '4', '--warmup', '0', '--json'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(bench.status, 0, bench.stderr);
      const result = JSON.parse(bench.stdout) as { ops?: number; throughput?: { ops?: number } };
      assert.ok(JSON.stringify(result).includes('"ops":200') || result.ops === 200, `200 puts measured: ${bench.stdout.slice(0, 300)}`);
    } finally {
      proc.kill('SIGINT');
      await new Promise((resolve) => proc.once('exit', resolve));
    }
  });
});
