// `tessera dev` end to end, as a newcomer runs it: start, see `ready:`, use etcdctl (when installed)
// and a real etcd client, Ctrl-C, start again on the same data directory, and find the data there.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';

const bin = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));
const hasEtcdctl = spawnSync('etcdctl', ['version'], { encoding: 'utf8' }).status === 0;

function startDev(dataDir: string, port: number): Promise<{ proc: ChildProcess; endpoints: string[] }> {
  const proc = spawn(process.execPath, [bin, 'dev', '--data-dir', dataDir, '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line in 60 s:\n${out}`)), 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^ready: endpoints=(\S+)$/m.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ proc, endpoints: match[1].split(',') });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`tessera dev exited with ${code}:\n${out}`)));
  });
}

function interrupt(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.kill('SIGINT');
  });
}

function etcdctl(endpoints: string[], args: string[], input?: string): string {
  const result = spawnSync('etcdctl', [`--endpoints=${endpoints.join(',')}`, ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  assert.equal(result.status, 0, `etcdctl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

describe('tessera dev', { timeout: 180_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dev-'));
  // Every derived port (base, +20000, +30000, peers +1) stays below Linux's ephemeral range
  // (32768+), where an outgoing connection could hold one of them by chance.
  const port = 2579;
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('starts a 3-node cluster, serves etcd clients, stops on Ctrl-C and recovers its data', async () => {
    const first = await startDev(dataDir, port);
    assert.deepEqual(first.endpoints, ['127.0.0.1:2579', '127.0.0.1:22579', '127.0.0.1:32579']);
    const client = new Etcd3({ hosts: first.endpoints.map((e) => `http://${e}`) });
    await client.put('foo').value('bar');
    assert.equal(await client.get('foo').string(), 'bar');
    client.close();

    if (hasEtcdctl) {
      assert.equal(etcdctl([first.endpoints[1]], ['get', 'foo', '--print-value-only']).trim(), 'bar');
      etcdctl([first.endpoints[0]], ['put', 'fruit/apple', 'red']);
      etcdctl([first.endpoints[2]], ['put', 'fruit/kiwi', 'green']);
      assert.equal(etcdctl(first.endpoints, ['get', '--prefix', 'fruit/', '--keys-only']).trim().split(/\n+/).join(','), 'fruit/apple,fruit/kiwi');
      assert.match(etcdctl(first.endpoints, ['del', 'fruit/kiwi']), /^1/);
      const txn = etcdctl(first.endpoints, ['txn'], 'value("foo") = "bar"\n\nput foo baz\n\nput foo nope\n\n');
      assert.match(txn, /SUCCESS/);
      assert.equal(etcdctl(first.endpoints, ['get', 'foo', '--print-value-only']).trim(), 'baz');
    } else {
      console.log('SKIP: etcdctl not installed (npm run setup:tools installs it); used the etcd3 client only');
    }
    assert.equal(await interrupt(first.proc), 0);

    const second = await startDev(dataDir, port);
    const again = new Etcd3({ hosts: second.endpoints.map((e) => `http://${e}`) });
    assert.equal(await again.get('foo').string(), hasEtcdctl ? 'baz' : 'bar');
    again.close();
    assert.equal(await interrupt(second.proc), 0);
  });
});
