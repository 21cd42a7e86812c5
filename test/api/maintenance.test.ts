// etcdserverpb.Maintenance and etcdserverpb.Cluster over real gRPC: etcd's response shapes (uint64
// IDs exact, header revisions as etcd fills them), errors, and UNIMPLEMENTED for absent backends.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errors, GrpcCode } from '../../src/util/index.ts';
import { callError } from './client.ts';
import { startApi } from './harness.ts';
import { FakeCluster, FakeMaintenance, MEMBER_A, MEMBER_B, unframeSnapshot } from './fakes.ts';
import { MvccStore } from '../../src/mvcc/index.ts';
import { createHash, randomBytes } from 'node:crypto';

describe('Maintenance and Cluster', { timeout: 60_000 }, () => {
  let s: Awaited<ReturnType<typeof startApi>>;
  let maintenance: FakeMaintenance;
  let cluster: FakeCluster;
  before(async () => {
    s = await startApi((kv) => {
      maintenance = new FakeMaintenance(kv.store);
      cluster = new FakeCluster();
      return { maintenance, cluster };
    });
    await s.client.call('KV', 'put', { key: Buffer.from('a'), value: Buffer.from('1') });
  });
  after(async () => {
    s.client.close();
    await s.server.stop();
  });

  test('Status carries the member view and a header at the current revision', async () => {
    const status = await s.client.call('Maintenance', 'status');
    assert.deepEqual(status.header, {
      clusterId: '14841639068965178418',
      memberId: '10276657743932975437',
      revision: String(s.backend.store.currentRevision),
      raftTerm: '2',
    });
    assert.equal(status.leader, MEMBER_A);
    assert.equal(status.version, '3.4.0');
    assert.equal(status.raftTerm, '7');
    assert.equal(status.raftIndex, '42');
    assert.equal(status.raftAppliedIndex, '41');
    assert.equal(status.dbSize, '24576');
    assert.equal(status.dbSizeInUse, '16384');
    assert.deepEqual(status.errors, []);
    assert.equal(status.isLearner, false);
  });

  test("Status without a leader lists etcd's no-leader error before the alarms", async () => {
    maintenance.leader = '0';
    maintenance.errors = [`memberID:${MEMBER_A} alarm:NOSPACE `];
    try {
      const status = await s.client.call('Maintenance', 'status');
      assert.equal(status.leader, '0');
      assert.deepEqual(status.errors, ['etcdserver: no leader', `memberID:${MEMBER_A} alarm:NOSPACE `]);
    } finally {
      maintenance.leader = MEMBER_A;
      maintenance.errors = [];
    }
  });

  test('a backend EtcdError reaches the client with its code and message; other errors are INTERNAL', async () => {
    maintenance.failNext(Errors.stopped());
    const stopped = await callError(s.client.call('Maintenance', 'status'));
    assert.equal(stopped.code, GrpcCode.UNAVAILABLE);
    assert.equal(stopped.details, 'etcdserver: server stopped');
    maintenance.failNext(new Error('boom'));
    const internal = await callError(s.client.call('Maintenance', 'status'));
    assert.equal(internal.code, GrpcCode.INTERNAL);
    assert.equal(internal.details, 'etcdserver: internal error');
  });

  test('Alarm: activate, get, deactivate, as etcd answers (no header); Status lists active alarms', async () => {
    const activated = await s.client.call('Maintenance', 'alarm', {
      action: 'ACTIVATE',
      memberID: MEMBER_B,
      alarm: 'NOSPACE',
    });
    assert.equal(activated.header, null);
    assert.deepEqual(activated.alarms, [{ memberID: MEMBER_B, alarm: 'NOSPACE' }]);
    const listed = await s.client.call('Maintenance', 'alarm', { action: 'GET', alarm: 'NONE' });
    assert.deepEqual(listed.alarms, [{ memberID: MEMBER_B, alarm: 'NOSPACE' }]);
    const status = await s.client.call('Maintenance', 'status');
    assert.deepEqual(status.errors, [`memberID:${MEMBER_B} alarm:NOSPACE `]);
    const deactivated = await s.client.call('Maintenance', 'alarm', {
      action: 'DEACTIVATE',
      memberID: MEMBER_B,
      alarm: 'NOSPACE',
    });
    assert.deepEqual(deactivated.alarms, [{ memberID: MEMBER_B, alarm: 'NOSPACE' }]);
    assert.deepEqual((await s.client.call('Maintenance', 'alarm', {})).alarms, []);
  });

  test("Defragment and MoveLeader answer without a header; MoveLeader errors are etcd's", async () => {
    const defrag = await s.client.call('Maintenance', 'defragment');
    assert.equal(defrag.header, null);
    assert.equal(maintenance.defragments, 1);
    const moved = await s.client.call('Maintenance', 'moveLeader', { targetID: MEMBER_B });
    assert.equal(moved.header, null);
    assert.equal(maintenance.leader, MEMBER_B);
    const notLeader = await callError(s.client.call('Maintenance', 'moveLeader', { targetID: MEMBER_A }));
    assert.deepEqual(
      [notLeader.code, notLeader.details],
      [GrpcCode.FAILED_PRECONDITION, 'etcdserver: not leader'],
    );
    maintenance.leader = MEMBER_A;
  });

  test('Hash and HashKV carry the store hash; HashKV fails like a read for compacted or future revisions', async () => {
    const store = s.backend.store;
    const hash = await s.client.call('Maintenance', 'hash');
    assert.equal(hash.hash, store.hashKV(0).hash);
    assert.equal(hash.header.revision, String(store.currentRevision));
    const first = store.currentRevision;
    await s.client.call('KV', 'put', { key: Buffer.from('h'), value: Buffer.from('2') });
    const past = await s.client.call('Maintenance', 'HashKV', { revision: first });
    assert.deepEqual(
      [past.hash, past.hashRevision, past.compactRevision, past.header.revision],
      // compact_revision -1: never compacted (etcd's compactMainRev starts at -1)
      [store.hashKV(first).hash, String(first), '-1', String(store.currentRevision)],
    );
    const now = await s.client.call('Maintenance', 'HashKV', { revision: 0 });
    assert.equal(now.hashRevision, String(store.currentRevision));
    assert.notEqual(now.hash, past.hash);
    const future = await callError(
      s.client.call('Maintenance', 'HashKV', { revision: store.currentRevision + 10 }),
    );
    assert.deepEqual(
      [future.code, future.details],
      [GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
    );
  });

  test('Snapshot streams 32 KiB messages with remaining_bytes, padded to 512, then the SHA-256', async () => {
    for (let i = 0; i < 300; i++) {
      await s.client.call('KV', 'put', {
        key: Buffer.from(`snap/${i}`),
        value: Buffer.from(randomBytes(400).toString('base64')),
      });
    }
    const messages = await s.client.collect('Maintenance', 'snapshot');
    assert.ok(messages.length > 3, `${messages.length} messages`);
    const body = messages.slice(0, -1);
    const blob = Buffer.concat(body.map((m) => m.blob));
    assert.equal(blob.length % 512, 0);
    let remaining = blob.length;
    for (const message of body) {
      assert.ok(message.blob.length > 0 && message.blob.length <= 32 * 1024);
      remaining -= message.blob.length;
      assert.equal(message.remainingBytes, String(remaining));
      assert.equal(message.header, null);
    }
    const last = messages.at(-1);
    assert.equal(last.remainingBytes, '0');
    assert.deepEqual(last.blob, createHash('sha256').update(blob).digest());
    const restored = MvccStore.restore(unframeSnapshot(blob));
    assert.equal(restored.hashKV(0).hash, s.backend.store.hashKV(0).hash);
    assert.equal(maintenance.openSnapshots, 0);
  });

  test('a snapshot the client abandons is closed; a failing one ends with the error', async () => {
    const call = s.client.service('Maintenance').snapshot({});
    call.on('error', () => {});
    await new Promise((resolve) => call.once('data', resolve));
    call.cancel();
    for (let i = 0; i < 100 && maintenance.openSnapshots !== 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(maintenance.openSnapshots, 0);
    maintenance.failNext(Errors.timeout());
    await assert.rejects(
      s.client.collect('Maintenance', 'snapshot'),
      (e: any) => e.code === GrpcCode.UNAVAILABLE && e.details === 'etcdserver: request timed out',
    );
  });

  test('MemberList returns every member with uint64 IDs exact and a header with revision 0', async () => {
    const list = await s.client.call('Cluster', 'memberList', {});
    assert.equal(list.header.revision, '0');
    assert.equal(list.header.memberId, '10276657743932975437');
    assert.deepEqual(
      list.members.map((m: any) => [m.ID, m.name, m.peerURLs, m.clientURLs, m.isLearner]),
      [
        [MEMBER_A, 'n1', ['http://127.0.0.1:2380'], ['http://127.0.0.1:2379'], false],
        [MEMBER_B, '', ['http://127.0.0.2:2380'], [], true],
      ],
    );
    assert.equal(cluster.lastLinearizable, false);
    await s.client.call('Cluster', 'memberList', { linearizable: true });
    assert.equal(cluster.lastLinearizable, true);
  });

  test('MemberAdd checks and sorts peer URLs as etcd does, and answers with ID, URLs and learner flag only', async () => {
    for (const bad of [
      [],
      ['127.0.0.1:2380'],
      ['ftp://a:1'],
      ['http://a'],
      ['http://a:1/path'],
      ['http://a:1', 'nope'],
    ]) {
      const error = await callError(s.client.call('Cluster', 'memberAdd', { peerURLs: bad }));
      assert.deepEqual(
        [error.code, error.details],
        [GrpcCode.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'],
        JSON.stringify(bad),
      );
    }
    const added = await s.client.call('Cluster', 'memberAdd', {
      peerURLs: [' http://10.0.0.9:2380', 'https://[::1]:2380'],
      isLearner: true,
    });
    assert.equal(added.header.revision, '0');
    assert.deepEqual(added.member, {
      ID: '9223372036854775813',
      name: '',
      peerURLs: ['http://10.0.0.9:2380', 'https://[::1]:2380'],
      clientURLs: [],
      isLearner: true,
    });
    assert.equal(added.members.length, 3);
    const again = await callError(
      s.client.call('Cluster', 'memberAdd', { peerURLs: ['http://10.0.0.9:2380'] }),
    );
    assert.deepEqual(
      [again.code, again.details],
      [GrpcCode.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'],
    );
  });

  test("MemberPromote, MemberUpdate, MemberRemove return the list after; errors are etcd's", async () => {
    const id = '9223372036854775813';
    const promoted = await s.client.call('Cluster', 'memberPromote', { ID: id });
    assert.equal(promoted.members.find((m: any) => m.ID === id).isLearner, false);
    const twice = await callError(s.client.call('Cluster', 'memberPromote', { ID: id }));
    assert.deepEqual(
      [twice.code, twice.details],
      [GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'],
    );
    const updated = await s.client.call('Cluster', 'memberUpdate', {
      ID: id,
      peerURLs: ['http://10.0.0.10:2380'],
    });
    assert.deepEqual(updated.members.find((m: any) => m.ID === id).peerURLs, ['http://10.0.0.10:2380']);
    const removed = await s.client.call('Cluster', 'memberRemove', { ID: id });
    assert.equal(removed.header.memberId, '10276657743932975437');
    assert.deepEqual(
      removed.members.map((m: any) => m.ID),
      [MEMBER_A, MEMBER_B],
    );
    const missing = await callError(s.client.call('Cluster', 'memberRemove', { ID: id }));
    assert.deepEqual([missing.code, missing.details], [GrpcCode.NOT_FOUND, 'etcdserver: member not found']);
  });
});

describe('services without a backend', { timeout: 30_000 }, () => {
  test('answer UNIMPLEMENTED', async () => {
    const s = await startApi(() => ({}));
    try {
      for (const [service, method] of [
        ['Maintenance', 'status'],
        ['Maintenance', 'HashKV'],
        ['Cluster', 'memberList'],
        ['Lease', 'leaseGrant'],
        ['Lock', 'lock'],
        ['Election', 'leader'],
      ] as const) {
        const error = await callError(s.client.call(service, method));
        assert.equal(error.code, GrpcCode.UNIMPLEMENTED, `${service}.${method}`);
      }
    } finally {
      s.client.close();
      await s.server.stop();
    }
  });
});
