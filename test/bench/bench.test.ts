// `tessera bench` end to end: a real single-node Tessera process, the CLI as a user runs it, and the
// --json result checked for its shape and for exactly --total operations.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ProcessCluster } from '../support/cluster.ts';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
let cluster: ProcessCluster;

before(async () => {
  cluster = await ProcessCluster.start({ nodes: 1 });
});

after(async () => {
  await cluster?.stop();
});

function bench(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', cli, 'bench', ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

function isLatency(value: unknown): boolean {
  const l = value as Record<string, number>;
  return (
    ['count', 'meanMs', 'p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs'].every((k) => typeof l[k] === 'number') &&
    l.p50Ms <= l.p90Ms &&
    l.p90Ms <= l.p99Ms &&
    l.p99Ms <= l.p999Ms &&
    l.p999Ms <= l.maxMs
  );
}

test('bench put --total 200 --json does exactly 200 puts and reports latency and throughput', async () => {
  const { stdout } = await bench(['put', '--endpoints', cluster.endpoint(0), '--total', '200', '--warmup', '0', '--clients', '10', '--conns', '2', '--json']);
  const result = JSON.parse(stdout);
  assert.equal(result.workload, 'put');
  assert.deepEqual(result.endpoints, [cluster.endpoint(0)]);
  assert.equal(result.ops, 200);
  assert.equal(result.errors, 0);
  assert.deepEqual(result.errorKinds, {});
  assert.ok(result.opsPerSec > 0 && result.elapsedSec > 0, `rate ${result.opsPerSec} over ${result.elapsedSec} s`);
  assert.ok(isLatency(result.latency), JSON.stringify(result.latency));
  assert.equal(result.latency.count, 200);
  assert.ok(result.latency.p50Ms > 0);
  assert.equal(result.settings.total, 200);
  assert.equal(result.settings.valSize, 256);
  assert.ok(typeof result.client.cpuSec === 'number' && result.client.cpuUsPerOp > 0);
});

test('bench against an address where nothing listens fails with a clear message', async () => {
  await assert.rejects(
    bench(['put', '--endpoints', '127.0.0.1:1', '--total', '10', '--wait', '500', '--json']),
    /endpoint not serving: 127\.0\.0\.1:1/,
  );
});

test('bench load writes the key space once in Txns of --batch puts, and refuses batches etcd would refuse', async () => {
  const { stdout } = await bench(['load', '--endpoints', cluster.endpoint(0), '--key-space', '250', '--batch', '100', '--clients', '2', '--conns', '2', '--key-prefix', 'load/', '--json']);
  const result = JSON.parse(stdout);
  assert.equal(result.workload, 'load');
  assert.equal(result.ops, 3, 'ceil(250 / 100) Txns');
  assert.equal(result.errors, 0);
  assert.deepEqual(result.load, { batch: 100, keys: 250, keysPerSec: result.load.keysPerSec });
  assert.ok(result.load.keysPerSec > 0);
  assert.equal(result.settings.warmupSec, 0);
  const count = spawnSync('etcdctl', ['--endpoints', cluster.endpoint(0), 'get', 'load/', '--prefix', '--keys-only', '-w', 'json'], {
    encoding: 'utf8',
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  if (count.status === 0) assert.equal(JSON.parse(count.stdout).count, 250, 'every key written once (etcdctl)');
  await assert.rejects(bench(['load', '--endpoints', cluster.endpoint(0), '--batch', '129', '--json']), /--batch between 1 and 128/);
  await assert.rejects(
    bench(['load', '--endpoints', cluster.endpoint(0), '--batch', '100', '--val-size', '100000', '--json']),
    /within 1572864 bytes per Txn/,
  );
});

test('bench --target leader finds the leader by Maintenance.Status; --target follower says when there is none', async () => {
  const { stdout, stderr } = await bench(['put', '--endpoints', cluster.endpoint(0), '--target', 'leader', '--total', '20', '--warmup', '0', '--clients', '2', '--json']);
  assert.match(stderr, new RegExp(`--target leader: ${cluster.endpoint(0).replace(/\./g, '\\.')}`));
  assert.equal(JSON.parse(stdout).ops, 20);
  await assert.rejects(
    bench(['put', '--endpoints', cluster.endpoint(0), '--target', 'follower', '--total', '10', '--json']),
    /no follower among 127\.0\.0\.1:\d+: give every member's endpoint in --endpoints/,
  );
});
