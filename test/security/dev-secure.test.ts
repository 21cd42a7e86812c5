// `tessera dev --secure` as a newcomer runs it: certificates are made with openssl, the cluster
// comes up over TLS with mutual TLS and encryption at rest, and the printed etcdctl flags work
// (while the same command without them is refused). Ctrl-C stops it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { hasEtcdctl, hasOpenssl, lmdbBytes } from './support.ts';

const bin = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));

function startDev(dataDir: string, port: number): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, [bin, 'dev', '--secure', '--data-dir', dataDir, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in 90 s:\n${out}`)), 90_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (/^ready: /m.test(out)) {
        clearTimeout(timer);
        resolve({ proc, out: () => out });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`tessera dev --secure exited with ${code}:\n${out}`)));
  });
}

/** The printed flags as etcd3 client options. */
function flagValues(flags: string): { endpoints: string[]; cacert: string; cert: string; key: string } {
  const get = (name: string) => {
    const match = new RegExp(`--${name}=(\\S+)`).exec(flags);
    assert.ok(match, `--${name} printed`);
    return match[1];
  };
  return { endpoints: get('endpoints').split(','), cacert: get('cacert'), cert: get('cert'), key: get('key') };
}

describe('tessera dev --secure', { skip: hasOpenssl ? false : 'openssl not installed', timeout: 180_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dev-secure-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('comes up over TLS with encryption at rest and prints etcdctl flags that work', async () => {
    // Ports 2679, 22679, 32679 (+1): below Linux's ephemeral range, see test/cli/dev.test.ts.
    const dev = await startDev(dataDir, 2679);
    try {
      const flagsLine = /^etcdctl-flags: (.+)$/m.exec(dev.out());
      assert.ok(flagsLine, `flags printed:\n${dev.out()}`);
      assert.match(dev.out(), /^ready: endpoints=https:\/\/127\.0\.0\.1:2679,https:\/\/127\.0\.0\.1:22679,https:\/\/127\.0\.0\.1:32679$/m);
      const flags = flagValues(flagsLine[1]);
      const value = `dev-secure-${Date.now()}`;
      if (hasEtcdctl) {
        const run = (args: string[]) =>
          spawnSync('etcdctl', [...flagsLine[1].split(' '), '--dial-timeout=3s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 });
        assert.equal(run(['put', 'foo', value]).stdout.trim(), 'OK');
        assert.equal(run(['get', 'foo', '--print-value-only']).stdout.trim(), value);
        const withoutCert = spawnSync('etcdctl', [`--endpoints=${flags.endpoints[0]}`, `--cacert=${flags.cacert}`, '--dial-timeout=2s', '--command-timeout=3s', 'get', 'foo'], {
          encoding: 'utf8',
          env: { ...process.env, ETCDCTL_API: '3' },
          timeout: 20_000,
        });
        assert.notEqual(withoutCert.status, 0, 'a client without a certificate is refused');
      } else {
        console.log('SKIP: etcdctl not installed (npm run setup:tools installs it); used the etcd3 client with the printed files');
        const client = new Etcd3({
          hosts: flags.endpoints,
          credentials: { rootCertificate: readFileSync(flags.cacert), certChain: readFileSync(flags.cert), privateKey: readFileSync(flags.key) },
          grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
        });
        await client.put('foo').value(value);
        assert.equal(await client.get('foo').string(), value);
        client.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const node of ['node1', 'node2', 'node3']) {
        assert.ok(!lmdbBytes(join(dataDir, node)).includes(value), `${node} keeps the value encrypted at rest`);
      }
    } finally {
      const exited = new Promise<number | null>((resolve) => dev.proc.once('exit', (code) => resolve(code)));
      dev.proc.kill('SIGINT');
      assert.equal(await exited, 0);
    }
  });
});
