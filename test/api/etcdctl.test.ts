// Compatibility with a client nobody here wrote: the real etcdctl binary (Go clientv3) against
// ApiServer over the real MvccStore. Skips when etcdctl is not installed (npm run setup:tools).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { ApiServer } from '../../src/api/index.ts';
import { StoreBackend } from './backends.ts';

const installed = spawnSync('etcdctl', ['version'], { encoding: 'utf8' });
const etcdctlVersion = installed.status === 0 ? installed.stdout.split('\n')[0] : null;
if (etcdctlVersion === null) console.log('SKIP: etcdctl not installed (npm run setup:tools installs it)');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe(`etcdctl (${etcdctlVersion ?? 'not installed'})`, { skip: etcdctlVersion === null, timeout: 120_000 }, () => {
  let backend: StoreBackend;
  let server: ApiServer;
  let endpoint: string;

  before(async () => {
    backend = new StoreBackend();
    server = new ApiServer({ backend, host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
    endpoint = `127.0.0.1:${await server.start()}`;
  });
  after(async () => {
    await server.stop();
  });

  /** Runs etcdctl asynchronously (the server lives in this process, so the event loop must keep turning). */
  function etcdctl(args: string[], input = ''): Promise<Result> {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETCDCTL_')));
    return new Promise((resolve, reject) => {
      const child = spawn('etcdctl', [`--endpoints=${endpoint}`, '--dial-timeout=5s', '--command-timeout=10s', ...args], {
        env: { ...env, ETCDCTL_API: '3' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input);
    });
  }

  async function ok(args: string[], input?: string): Promise<string> {
    const result = await etcdctl(args, input);
    assert.equal(result.code, 0, `etcdctl ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** The line etcdctl prints for a failed command (it also logs a retry warning as JSON before it). */
  async function failure(args: string[], input?: string): Promise<string> {
    const result = await etcdctl(args, input);
    assert.equal(result.code, 1, `etcdctl ${args.join(' ')} should fail: ${result.stdout}`);
    const line = result.stderr.split('\n').find((l) => l.startsWith('Error: '));
    assert.ok(line, `no Error line in: ${result.stderr}`);
    return line;
  }

  test('put, get, get --prefix', async () => {
    assert.equal(await ok(['put', 'foo', 'bar']), 'OK\n');
    assert.equal(await ok(['put', 'foo2', 'baz']), 'OK\n');
    assert.equal(await ok(['get', 'foo']), 'foo\nbar\n');
    assert.equal(await ok(['get', '--prefix', 'foo']), 'foo\nbar\nfoo2\nbaz\n');
    assert.equal(await ok(['get', 'missing']), '');
  });

  test('get -w json shows the full header, uint64 IDs exact', async () => {
    const out = await ok(['get', 'foo', '-w', 'json']);
    assert.match(out, /"cluster_id":14841639068965178418,"member_id":10276657743932975437,/);
    assert.match(out, /"raft_term":2\}/);
    assert.match(out, new RegExp(`"revision":${backend.store.currentRevision},`));
    assert.match(out, /"kvs":\[\{"key":"Zm9v",/); // base64 "foo"
  });

  test('txn from stdin: success and failure branches', async () => {
    const success = await ok(['txn'], 'value("foo") = "bar"\n\nput foo3 qux\nget foo\n\nput never x\n\n');
    assert.equal(success, 'SUCCESS\n\nOK\n\nfoo\nbar\n');
    assert.equal(backend.value('foo3'), 'qux');
    const failed = await ok(['txn'], 'mod("foo") = "0"\n\nput never x\n\nget foo3\n\n');
    assert.equal(failed, 'FAILURE\n\nfoo3\nqux\n');
    assert.equal(backend.value('never'), null);
  });

  test('del and del --prefix print the count', async () => {
    assert.equal(await ok(['del', 'foo']), '1\n');
    assert.equal(await ok(['del', '--prefix', 'foo']), '2\n');
    assert.equal(await ok(['get', '--prefix', 'foo']), '');
  });

  test('compaction', async () => {
    await ok(['put', 'c', '1']);
    const revision = backend.store.currentRevision;
    assert.equal(await ok(['compaction', String(revision)]), `compacted revision ${revision}\n`);
    assert.equal(await failure(['compaction', String(revision)]), 'Error: etcdserver: mvcc: required revision has been compacted');
  });

  test('etcd errors print as etcdctl prints them for etcd', async () => {
    assert.equal(await failure(['get', 'foo', '--rev=99999999']), 'Error: etcdserver: mvcc: required revision is a future revision');
    assert.equal(
      await failure(['txn'], 'mod("a") > "0"\n\nput a 1\nput a 2\n\n\n'),
      'Error: etcdserver: duplicate key given in txn request',
    );
  });

  test('request size: 1.5 MiB limit from the server, 2 MiB from the client itself', async () => {
    // The same boundary etcd 3.4.23 showed for a member whose ID's low 16 bits were 0x390d (9-byte
    // request IDs, like the fake's 0x694d): a 1572838-byte value under key "big" fits, one more does not.
    await ok(['put', 'big'], 'x'.repeat(1_572_838));
    assert.equal(await failure(['put', 'big'], 'x'.repeat(1_572_839)), 'Error: etcdserver: request is too large');
    assert.match(
      await failure(['put', 'big'], 'x'.repeat(2 * 1024 * 1024)),
      /^Error: rpc error: code = ResourceExhausted desc = trying to send message larger than max/,
    );
  });
});
