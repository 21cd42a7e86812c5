// The real etcdctl (Go clientv3, a client nobody here wrote) against a real 3-node Tessera cluster:
// every v3 command, its output in etcdctl's formats checked against what etcd 3.4 prints (values
// asserted; IDs, sizes and timings vary). Skips when etcdctl is not installed (npm run setup:tools).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeEndpoint } from '../../src/cli/index.ts';
import { EtcdClient } from '../api/client.ts';
import { freePort, ProcessCluster } from '../support/cluster.ts';
import { leaderIndex, sleep, until } from './support.ts';

const installed = spawnSync('etcdctl', ['version'], { encoding: 'utf8' });
const etcdctlVersion = installed.status === 0 ? installed.stdout.split('\n')[0] : null;
if (etcdctlVersion === null) console.log('SKIP: etcdctl not installed');
/** etcdctl 3.5 added `get --count-only`; 3.4 has no such flag. */
const hasCountOnly = etcdctlVersion !== null && spawnSync('etcdctl', ['get', '--help'], { encoding: 'utf8' }).stdout.includes('--count-only');

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETCDCTL_'))),
  ETCDCTL_API: '3',
};

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A command left running (watch, lock, elect): its output so far, and a way to end it. */
interface Background {
  readonly child: ChildProcess;
  output(): string;
  /** Sends `signal` and resolves once the process exited. */
  stop(signal?: NodeJS.Signals): Promise<Result>;
}

const hex = (id: string | number | bigint) => BigInt(id).toString(16);

describe(`etcdctl (${etcdctlVersion ?? 'not installed'}) against a 3-node cluster`, { skip: etcdctlVersion === null, timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  let all: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 3, logLevel: 'info', exitWithParent: true });
    all = cluster.endpoints().join(',');
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await cluster?.stop({ keepData: process.env.KEEP_TEST_DATA === '1' });
  });

  function start(args: string[], endpoints = all, input = ''): { child: ChildProcess; done: Promise<Result>; out: () => string } {
    const child = spawn('etcdctl', [`--endpoints=${endpoints}`, '--dial-timeout=5s', '--command-timeout=10s', ...args], { env });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const done = new Promise<Result>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        children.delete(child);
        resolve({ code, stdout, stderr });
      });
    });
    child.stdin.end(input);
    return { child, done, out: () => stdout };
  }

  const etcdctl = (args: string[], endpoints = all, input = '') => start(args, endpoints, input).done;

  async function ok(args: string[], endpoints = all, input = ''): Promise<string> {
    const result = await etcdctl(args, endpoints, input);
    assert.equal(result.code, 0, `etcdctl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  }

  /** The `Error: ...` line etcdctl prints for a failed command (after its JSON retry warnings). */
  async function failure(args: string[], endpoints = all, input = ''): Promise<string> {
    const result = await etcdctl(args, endpoints, input);
    assert.notEqual(result.code, 0, `etcdctl ${args.join(' ')} should fail: ${result.stdout}`);
    const line = result.stderr.split('\n').find((l) => l.startsWith('Error: '));
    assert.ok(line, `no Error line in: ${result.stderr}`);
    return line;
  }

  function background(args: string[], endpoints = all): Background {
    const { child, done, out } = start(args, endpoints);
    return {
      child,
      output: out,
      async stop(signal = 'SIGINT') {
        child.kill(signal);
        return done;
      },
    };
  }

  const json = async (args: string[], endpoints = all) => JSON.parse(await ok([...args, '-w', 'json'], endpoints));
  const revision = async () => Number((await json(['get', 'any-key'])).header.revision);

  test('put: plain, --prev-kv, --lease, --ignore-value, --ignore-lease', async () => {
    assert.equal(await ok(['put', 'p/a', '1']), 'OK\n');
    assert.equal(await ok(['put', 'p/a', '2', '--prev-kv']), 'OK\np/a\n1\n');
    const granted = (await ok(['lease', 'grant', '60'])).match(/^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$/);
    assert.ok(granted);
    const lease = granted[1];
    assert.equal(await ok(['put', 'p/l', 'v', `--lease=${lease}`]), 'OK\n');
    const leased = await json(['get', 'p/l']);
    assert.equal(hex(leased.kvs[0].lease).padStart(16, '0'), lease);
    // --ignore-value keeps the value; the lease is the request's.
    assert.equal(await ok(['put', 'p/l', '--ignore-value', `--lease=${lease}`]), 'OK\n');
    assert.equal(await ok(['get', 'p/l', '--print-value-only']), 'v\n');
    // --ignore-lease keeps the lease.
    assert.equal(await ok(['put', 'p/l', 'w', '--ignore-lease']), 'OK\n');
    const kept = (await json(['get', 'p/l'])).kvs[0];
    assert.deepEqual([Buffer.from(kept.value, 'base64').toString(), hex(kept.lease).padStart(16, '0')], ['w', lease]);
    assert.equal(await failure(['put', 'p/none', '--ignore-value']), 'Error: etcdserver: key not found');
    assert.equal(await failure(['put', 'p/x', 'y', '--lease=1234']), 'Error: etcdserver: requested lease not found');
    await ok(['lease', 'revoke', lease]);
  });

  test('get: --prefix, --from-key, --limit, --order/--sort-by, --rev, --keys-only, --print-value-only, -w json', async () => {
    await ok(['put', 'g/a', '1']);
    const first = await revision();
    await ok(['put', 'g/b', '22']);
    await ok(['put', 'g/c', '3']);
    await ok(['put', 'g/a', '11']);
    assert.equal(await ok(['get', 'g/', '--prefix']), 'g/a\n11\ng/b\n22\ng/c\n3\n');
    assert.equal(await ok(['get', 'g/b', '--from-key', '--limit', '2']), 'g/b\n22\ng/c\n3\n');
    assert.equal(await ok(['get', 'g/', '--prefix', '--limit', '2']), 'g/a\n11\ng/b\n22\n');
    assert.equal(await ok(['get', 'g/', '--prefix', '--order', 'DESCEND', '--sort-by', 'MODIFY']), 'g/a\n11\ng/c\n3\ng/b\n22\n');
    assert.equal(await ok(['get', 'g/', '--prefix', '--order', 'DESCEND', '--sort-by', 'VALUE']), 'g/c\n3\ng/b\n22\ng/a\n11\n');
    assert.equal(await ok(['get', 'g/', '--prefix', '--order', 'DESCEND', '--sort-by', 'CREATE', '--keys-only']), 'g/c\n\ng/b\n\ng/a\n\n');
    assert.equal(await ok(['get', 'g/a', 'g/c', '--order', 'ASCEND', '--sort-by', 'KEY']), 'g/a\n11\ng/b\n22\n');
    assert.equal(await ok(['get', 'g/a', `--rev=${first}`]), 'g/a\n1\n');
    assert.equal(await ok(['get', 'g/a', '--print-value-only']), '11\n');
    assert.equal(await ok(['get', 'g/a', '--consistency=s']), 'g/a\n11\n');
    assert.equal(await ok(['get', 'g/missing']), '');

    const limited = await json(['get', 'g/', '--prefix', '--limit', '1']);
    assert.equal(limited.count, 3);
    assert.equal(limited.more, true);
    assert.equal(limited.kvs.length, 1);
    assert.deepEqual(Object.keys(limited.header), ['cluster_id', 'member_id', 'revision', 'raft_term']);
    const [kv] = (await json(['get', 'g/a'])).kvs;
    assert.deepEqual(
      { key: Buffer.from(kv.key, 'base64').toString(), version: kv.version, value: Buffer.from(kv.value, 'base64').toString() },
      { key: 'g/a', version: 2, value: '11' },
    );
    assert.equal(kv.create_revision, first);
    if (hasCountOnly) {
      assert.equal((await json(['get', 'g/', '--prefix', '--count-only'])).count, 3);
    }
    assert.equal(
      await failure(['get', 'g/a', '--rev=99999999']),
      'Error: etcdserver: mvcc: required revision is a future revision',
    );
  });

  test('del: a key, --prev-kv, --prefix, --from-key', async () => {
    for (const key of ['d/1', 'd/2', 'd/3', 'zzz/1', 'zzz/2']) await ok(['put', key, `v${key}`]);
    assert.equal(await ok(['del', 'd/1', '--prev-kv']), '1\nd/1\nvd/1\n');
    assert.equal(await ok(['del', 'd/', '--prefix']), '2\n');
    assert.equal(await ok(['del', 'zzz/', '--from-key']), '2\n');
    assert.equal(await ok(['del', 'd/1']), '0\n');
    assert.equal(await ok(['get', 'd/', '--prefix']), '');
  });

  test('txn from stdin: interactive prompts, both branches, -w json', async () => {
    await ok(['put', 't/a', '11']);
    const success = await ok(['txn', '-i'], all, 'value("t/a") = "11"\n\nput t/1 yes\nget t/a\n\nput t/2 no\n\n');
    assert.equal(success, 'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n\nt/a\n11\n');
    assert.equal(await ok(['get', 't/2']), '');
    const result = JSON.parse(await ok(['txn', '-w', 'json'], all, 'mod("t/a") > "100000000"\n\nput t/3 yes\n\nget t/a\ndel t/1\n\n'));
    assert.equal(result.succeeded, undefined); // false is omitted, as etcd's JSON does
    assert.equal(result.responses.length, 2);
    assert.equal(Buffer.from(result.responses[0].Response.ResponseRange.kvs[0].value, 'base64').toString(), '11');
    assert.equal(result.responses[1].Response.ResponseDeleteRange.deleted, 1);
    assert.equal(await failure(['txn'], all, 'mod("t/a") > "0"\n\nput t/x 1\nput t/x 2\n\n\n'), 'Error: etcdserver: duplicate key given in txn request');
  });

  test('watch --prefix --prev-kv, --rev (history), canceled below the compaction', async () => {
    const from = (await revision()) + 1;
    const live = background(['watch', '--prefix', 'w/', '--prev-kv', `--rev=${from}`]);
    const history = background(['watch', 'w/1', `--rev=${from}`]);
    await ok(['put', 'w/1', 'one']);
    await ok(['put', 'w/1', 'two']);
    await ok(['put', 'other', 'x']);
    await ok(['del', 'w/1']);
    const expected = 'PUT\nw/1\none\nPUT\nw/1\none\nw/1\ntwo\nDELETE\nw/1\ntwo\nw/1\n\n';
    await until('the live watch to print every event', async () => live.output() === expected, 10_000);
    await until('the key watch to print every event', async () => history.output() === 'PUT\nw/1\none\nPUT\nw/1\ntwo\nDELETE\nw/1\n\n', 10_000);
    await live.stop();
    await history.stop();
    // Replayed later from the same revision: the same events.
    const replay = background(['watch', 'w/1', `--rev=${from}`]);
    await until('the replay', async () => replay.output() === 'PUT\nw/1\none\nPUT\nw/1\ntwo\nDELETE\nw/1\n\n', 10_000);
    await replay.stop();
  });

  test('compaction and compaction --physical; older revisions are gone', async () => {
    await ok(['put', 'c/k', '1']);
    const old = await revision();
    await ok(['put', 'c/k', '2']);
    assert.equal(await ok(['compaction', String(old)]), `compacted revision ${old}\n`);
    const now = await revision();
    assert.equal(await ok(['compaction', String(now), '--physical']), `compacted revision ${now}\n`);
    assert.equal(await failure(['get', 'c/k', `--rev=${old}`]), 'Error: etcdserver: mvcc: required revision has been compacted');
    assert.equal(await failure(['compaction', String(old)]), 'Error: etcdserver: mvcc: required revision has been compacted');
    const canceled = await etcdctl(['watch', 'c/k', `--rev=${old}`]);
    assert.equal(canceled.code, 5); // etcdctl's ExitInterrupted
    assert.equal(
      canceled.stderr,
      'watch was canceled (etcdserver: mvcc: required revision has been compacted)\nError: watch is canceled by the server\n',
    );
    assert.equal(await ok(['get', 'c/k', '--print-value-only']), '2\n');
  });

  test('lease: grant, timetolive --keys, list, keep-alive --once, revoke', async () => {
    const id = (await ok(['lease', 'grant', '100'])).match(/^lease ([0-9a-f]{16}) granted with TTL\(100s\)\n$/)?.[1];
    assert.ok(id);
    await ok(['put', 'l/a', '1', `--lease=${id}`]);
    await ok(['put', 'l/b', '2', `--lease=${id}`]);
    const remaining = (await ok(['lease', 'timetolive', id])).match(new RegExp(`^lease ${id} granted with TTL\\(100s\\), remaining\\((\\d+)s\\)\\n$`));
    assert.ok(remaining && Number(remaining[1]) <= 100 && Number(remaining[1]) >= 90, String(remaining));
    assert.match(
      await ok(['lease', 'timetolive', id, '--keys']),
      new RegExp(`^lease ${id} granted with TTL\\(100s\\), remaining\\(\\d+s\\), attached keys\\(\\[l/a l/b\\]\\)\\n$`),
    );
    const listed = (await ok(['lease', 'list'])).split('\n');
    assert.match(listed[0], /^found \d+ leases$/);
    assert.ok(listed.includes(id));
    assert.equal(await ok(['lease', 'keep-alive', '--once', id]), `lease ${id} keepalived with TTL(100)\n`);
    const ttlJson = await json(['lease', 'timetolive', id, '--keys']);
    assert.equal(hex(ttlJson.id).padStart(16, '0'), id);
    assert.equal(ttlJson['granted-ttl'], 100);
    assert.equal(await ok(['lease', 'revoke', id]), `lease ${id} revoked\n`);
    assert.equal(await ok(['get', 'l/', '--prefix']), '');
    assert.equal(await ok(['lease', 'timetolive', id]), `lease ${id} already expired\n`);
    assert.equal(await failure(['lease', 'keep-alive', '--once', id]), 'Error: etcdserver: requested lease not found');
    assert.equal(await failure(['lease', 'revoke', id]), 'Error: failed to revoke lease (etcdserver: requested lease not found)');
  });

  test('lock: a command runs holding the lock; a second locker waits for the first; revisions fence', async () => {
    const once = await ok(['lock', 'mylock', '--', 'sh', '-c', 'echo hi $ETCD_LOCK_KEY $ETCD_LOCK_REV']);
    const [, key1, rev1] = once.match(/^hi (mylock\/[0-9a-f]+) (\d+)\n$/) ?? [];
    assert.ok(key1, once);
    const holder = background(['lock', 'mylock']);
    await until('the holder to print its key', async () => /^mylock\/[0-9a-f]+\n\n$/.test(holder.output()));
    const second = etcdctl(['lock', 'mylock', '--', 'sh', '-c', 'echo second $ETCD_LOCK_REV']);
    let secondDone = false;
    void second.then(() => (secondDone = true));
    await until('the second locker to queue', async () => (await ok(['get', 'mylock/', '--prefix', '--keys-only'])).split('\n').filter(Boolean).length === 2);
    await sleep(300);
    assert.equal(secondDone, false, 'the second locker ran while the first held the lock');
    const held = await holder.stop('SIGINT'); // etcdctl unlocks on SIGINT
    assert.equal(held.code, 0, held.stderr);
    const result = await second;
    assert.equal(result.code, 0, result.stderr);
    const rev2 = result.stdout.match(/^second (\d+)\n$/)?.[1];
    assert.ok(rev2 && Number(rev2) > Number(rev1), `fencing revision ${rev2} after ${rev1}`);
    assert.equal(await ok(['get', 'mylock/', '--prefix']), '');
  });

  test('elect: a campaigner in the background, an observer with -l, failover when it resigns', async () => {
    const p1 = background(['elect', 'myelection', 'p1']);
    await until('p1 to lead', async () => /^myelection\/[0-9a-f]+\np1\n$/.test(p1.output()));
    const observer = background(['elect', '-l', 'myelection']);
    await until('the observer to see p1', async () => observer.output() === p1.output());
    const p2 = background(['elect', 'myelection', 'p2']);
    await until('p2 to queue', async () => (await ok(['get', 'myelection/', '--prefix', '--keys-only'])).split('\n').filter(Boolean).length === 2);
    assert.equal(p2.output(), '');
    assert.equal((await p1.stop('SIGINT')).code, 0); // resigns
    await until('p2 to lead', async () => /^myelection\/[0-9a-f]+\np2\n$/.test(p2.output()));
    await until('the observer to see p2', async () => observer.output() === p1.output() + p2.output());
    await p2.stop('SIGINT');
    await observer.stop('SIGINT');
    assert.equal(await ok(['get', 'myelection/', '--prefix']), '');
  });

  describe('member', () => {
    test('list (simple, table, json), add a learner, promote refused until in sync, remove', async () => {
      const lines = (await ok(['member', 'list'])).trim().split('\n').sort((x, y) => x.split(', ')[2].localeCompare(y.split(', ')[2]));
      assert.deepEqual(
        lines.map((l) => l.split(', ').slice(1)),
        cluster.nodes.map((n) => ['started', n.name, `http://127.0.0.1:${n.peerPort}`, `http://127.0.0.1:${n.clientPort}`, 'false']),
      );
      const table = await ok(['member', 'list', '-w', 'table']);
      assert.match(table, /\| +ID +\| STATUS +\| NAME +\| +PEER ADDRS +\| +CLIENT ADDRS +\| IS LEARNER \|/);
      const listed = await json(['member', 'list']);
      assert.deepEqual(listed.members.map((m: { name: string }) => m.name).sort(), ['n1', 'n2', 'n3']);

      const peer = `http://127.0.0.1:${await freePort()}`;
      const added = await ok(['member', 'add', 'n9', `--peer-urls=${peer}`, '--learner']);
      const [, id] = added.match(/^Member +([0-9a-f]+) added to cluster +[0-9a-f]+\n\nETCD_NAME="n9"\n/) ?? [];
      assert.ok(id, added);
      assert.match(added, new RegExp(`ETCD_INITIAL_CLUSTER=".*n9=${peer}.*"\\nETCD_INITIAL_ADVERTISE_PEER_URLS="${peer}"\\nETCD_INITIAL_CLUSTER_STATE="existing"\\n$`));
      assert.ok((await ok(['member', 'list'])).includes(`${id}, unstarted, , ${peer}, , true\n`));
      const leader = cluster.endpoint(await leaderIndex(cluster));
      assert.equal(
        await failure(['member', 'promote', id], leader),
        'Error: etcdserver: can only promote a learner member which is in sync with leader',
      );
      assert.match(await ok(['member', 'remove', id]), new RegExp(`^Member +${id} removed from cluster +[0-9a-f]+\\n$`));
      assert.equal(await failure(['member', 'remove', id]), 'Error: etcdserver: member not found');
      assert.equal((await ok(['member', 'list'])).trim().split('\n').length, 3);
    });

    // A follower forwards promote to the leader, which alone tracks the learner's progress.
    test('promote of an unstarted learner is refused through a follower too', async () => {
      const peer = `http://127.0.0.1:${await freePort()}`;
      const id = (await ok(['member', 'add', 'n8', `--peer-urls=${peer}`, '--learner'])).match(/^Member +([0-9a-f]+) /)?.[1];
      assert.ok(id);
      const follower = cluster.endpoint(((await leaderIndex(cluster)) + 1) % 3);
      try {
        assert.equal(
          await failure(['member', 'promote', id], follower),
          'Error: etcdserver: can only promote a learner member which is in sync with leader',
        );
      } finally {
        await ok(['member', 'remove', id]);
      }
    });
  });

  test('endpoint status, health, hashkv (simple, table, json)', async () => {
    const status = (await ok(['endpoint', 'status'])).trim().split('\n').map((l) => l.split(', '));
    assert.deepEqual(status.map((s) => s[0]), cluster.endpoints());
    assert.equal(status.filter((s) => s[4] === 'true').length, 1, 'one leader');
    for (const s of status) {
      assert.equal(s[2], '3.4.0');
      assert.match(s[3], /^\d+(\.\d+)? [kMG]?B$/);
      assert.equal(s[5], 'false');
    }
    assert.match(await ok(['endpoint', 'status', '-w', 'table']), /\| +ENDPOINT +\| +ID +\| VERSION \| DB SIZE \| IS LEADER \| IS LEARNER \| RAFT TERM \| RAFT INDEX \| RAFT APPLIED INDEX \| ERRORS \|/);
    const statusJson = await json(['endpoint', 'status']);
    assert.equal(new Set(statusJson.map((e: { Status: { leader: number } }) => e.Status.leader)).size, 1);
    assert.deepEqual(statusJson.map((e: { Endpoint: string }) => e.Endpoint), cluster.endpoints());

    // etcdctl 3.4 prints health lines on stderr.
    const healthRun = await etcdctl(['endpoint', 'health']);
    assert.equal(healthRun.code, 0, healthRun.stderr);
    const health = healthRun.stderr.trim().split('\n').sort();
    assert.deepEqual(health.map((l) => l.replace(/took = .*$/, 'took = X')), cluster.endpoints().sort().map((e) => `${e} is healthy: successfully committed proposal: took = X`));
    const healthJson = await json(['endpoint', 'health']);
    assert.ok(healthJson.every((h: { health: boolean }) => h.health === true));

    await ok(['put', 'h/k', 'v']);
    const rev = await revision();
    await until('every member to apply the revision', async () => {
      const revisions = (await json(['endpoint', 'status'])).map((e: { Status: { header: { revision: number } } }) => e.Status.header.revision);
      return revisions.every((r: number) => r >= rev);
    });
    const hashes = (await ok(['endpoint', 'hashkv', `--rev=${rev}`])).trim().split('\n').map((l) => l.split(', '));
    assert.deepEqual(hashes.map((h) => h[0]), cluster.endpoints());
    assert.equal(new Set(hashes.map((h) => h[1])).size, 1, `equal hashes at revision ${rev}: ${JSON.stringify(hashes)}`);
    assert.match(await ok(['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'table']), /\| +ENDPOINT +\| +HASH +\|/);
    const hashJson = await json(['endpoint', 'hashkv', `--rev=${rev}`]);
    assert.equal(String(hashJson[0].HashKV.hash), hashes[0][1]);
    assert.equal(new Set(hashJson.map((h: { HashKV: { compact_revision: number } }) => h.HashKV.compact_revision)).size, 1);
  });

  test('alarm list and disarm: NOSPACE refuses writes until disarmed', async () => {
    assert.equal(await ok(['alarm', 'list']), '');
    const grpc = new EtcdClient(cluster.endpoint(0));
    try {
      const memberId = (await grpc.call('Maintenance', 'status')).header.memberId;
      await grpc.call('Maintenance', 'alarm', { action: 'ACTIVATE', memberID: memberId, alarm: 'NOSPACE' });
      const line = `memberID:${memberId} alarm:NOSPACE \n`;
      assert.equal(await ok(['alarm', 'list']), line);
      assert.equal(await failure(['put', 'a/k', 'v']), 'Error: etcdserver: mvcc: database space exceeded');
      assert.equal(await ok(['del', 'a/k']), '0\n'); // deletes still go through
      // Every member reports every alarm in its status errors, as etcd does.
      for (const s of (await ok(['endpoint', 'status'])).split('\n').filter(Boolean)) assert.ok(s.endsWith(`, memberID:${memberId} alarm:NOSPACE `), s);
      assert.equal(await ok(['alarm', 'disarm']), line);
      assert.equal(await ok(['alarm', 'list']), '');
      assert.equal(await ok(['put', 'a/k', 'v']), 'OK\n');
    } finally {
      grpc.close();
    }
  });

  test('defrag', async () => {
    assert.equal(
      await ok(['defrag']),
      cluster.endpoints().map((e) => `Finished defragmenting etcd member[${e}]\n`).join(''),
    );
  });

  test('snapshot save, then tessera snapshot restore into a new single node that serves the data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-snap-'));
    let node: ChildProcess | null = null;
    try {
      await ok(['put', 's/k', 'saved']);
      const file = join(dir, 'backup.db');
      assert.equal(await ok(['snapshot', 'save', file], cluster.endpoint(0)), `Snapshot saved at ${file}\n`);
      const [clientPort, peerPort] = [await freePort(), await freePort()];
      const member = ['--name', 'r1', '--initial-cluster', `r1=http://127.0.0.1:${peerPort}`];
      const dataDir = join(dir, 'r1');
      const restore = spawnSync(process.execPath, ['--import', 'tsx', cli, 'snapshot', 'restore', file, '--data-dir', dataDir, ...member], { encoding: 'utf8' });
      assert.equal(restore.status, 0, restore.stderr);
      assert.match(restore.stdout, /^restored .* \(1 members\)\n$/);
      const log = openSync(join(dir, 'r1.log'), 'a');
      node = spawn(
        process.execPath,
        ['--import', 'tsx', cli, 'start', ...member, '--data-dir', dataDir, '--log-level', 'warn',
          '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--listen-peer-urls', `http://127.0.0.1:${peerPort}`],
        { stdio: ['ignore', log, log] },
      );
      const endpoint = `127.0.0.1:${clientPort}`;
      await probeEndpoint(endpoint, 30_000);
      assert.equal(await ok(['get', 's/k', '--print-value-only'], endpoint), 'saved\n');
      // The restored member publishes its name and client URLs once it leads (etcd: before serving).
      const published = `, started, r1, http://127.0.0.1:${peerPort}, http://127.0.0.1:${clientPort}, false\n`;
      await until('the restored member to publish its client URL', async () => (await ok(['member', 'list'], endpoint)).endsWith(published));
      assert.match(await ok(['member', 'list'], endpoint), new RegExp(`^[0-9a-f]+, started, r1, http://127.0.0.1:${peerPort}, http://127.0.0.1:${clientPort}, false\\n$`));
      assert.equal(await ok(['put', 's/after', 'restore'], endpoint), 'OK\n');
    } finally {
      node?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('move-leader: to a follower; refused for an unknown member or without the leader', async () => {
    const from = await leaderIndex(cluster);
    const to = (from + 1) % 3;
    const ids = (await json(['endpoint', 'status'])).map((e: { Status: { header: { member_id: number } } }) => hex(e.Status.header.member_id));
    assert.equal(await ok(['move-leader', ids[to]]), `Leadership transferred from ${ids[from]} to ${ids[to]}\n`);
    assert.equal(await leaderIndex(cluster), to);
    assert.equal(await failure(['move-leader', '1234']), 'Error: etcdserver: bad leader transferee');
    const followers = [0, 1, 2].filter((i) => i !== to).map((i) => cluster.endpoint(i));
    assert.equal(await failure(['move-leader', ids[from]], followers.join(',')), `Error: no leader endpoint given at [${followers.join(' ')}]`);
  });
});
