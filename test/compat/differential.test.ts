// The differential suite: the same seeded sequence of etcd API operations against a fresh real
// 3-member etcd cluster and a fresh 3-node Tessera cluster, every answer compared field by field
// (test/compat/differential/). A mismatch prints the op, etcd's answer and Tessera's. Longer runs:
// npm run compat:diff -- --seed S --ops N. Skips when etcd is not installed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compareOutcomes, compareWatchLogs } from './differential/compare.ts';
import type { SideView } from './differential/compare.ts';
import { etcdVersion } from './differential/etcd.ts';
import { generateOps } from './differential/ops.ts';
import type { Op } from './differential/ops.ts';
import type { WatchEntry } from './differential/run.ts';
import { runSeed } from './differential/session.ts';

/** Seeds and ops per seed of the default run (about 15 s each on the 2-core machine). */
const SEEDS = [1, 2, 3];
const OPS_PER_SEED = 250;

const version = etcdVersion();
if (version === null) console.log('SKIP: etcd not installed (npm run setup:tools)');

describe(`differential: etcd (${version ?? 'not installed'}) vs Tessera`, { skip: version === null, timeout: 180_000 }, () => {
  for (const seed of SEEDS) {
    test(`seed ${seed}: ${OPS_PER_SEED} ops answer alike`, async () => {
      const report = await runSeed(seed, OPS_PER_SEED);
      console.log(report.text.split('\n')[0]);
      assert.equal(report.mismatches.length + report.down.length, 0, `\n${report.text}`);
    });
  }
});

/** A side with no watch streams whose lease IDs map through `aliases`. */
function side(name: string, aliases: Record<string, string> = {}, logs = new Map<number, WatchEntry[]>()): SideView {
  return { name, mapLease: (id) => aliases[id] ?? id, sessions: [{ logs }] };
}

describe('differential: the comparison itself', () => {
  const put: Op = { kind: 'put', member: 0, req: { key: 'a', value: 'v' } };
  const kv = (lease: string) => ({ key: Buffer.from('a'), modRevision: '2', lease, value: Buffer.from('v') });

  test('catches a differing field and names it; ignores member IDs, raft terms and mapped lease IDs', () => {
    const etcd = { ok: true as const, value: { header: { revision: '2', memberId: '1', raftTerm: '5' }, prevKv: kv('9') } };
    const same = { ok: true as const, value: { header: { revision: '2', memberId: '7', raftTerm: '2' }, prevKv: kv('44') } };
    assert.deepEqual(compareOutcomes(0, put, null, etcd, same, side('tessera', { '44': '9' })), { mismatches: [], divergences: [] });
    const other = { ok: true as const, value: { header: { revision: '3' }, prevKv: kv('44') } };
    const { mismatches } = compareOutcomes(7, put, null, etcd, other, side('tessera', { '44': '9' }));
    assert.equal(mismatches.length, 1);
    assert.deepEqual(mismatches[0].differences, ['header.revision: "2" vs "3"']);
    const failed = { ok: false as const, code: 3, details: 'etcdserver: key is not provided' };
    assert.equal(compareOutcomes(7, put, null, etcd, failed, side('tessera')).mismatches.length, 1);
  });

  test('explains a documented divergence only where it applies', () => {
    // Equal sort values beyond 12 results may come in any order from etcd (Go's unstable sort).
    const range: Op = { kind: 'range', member: 0, req: {} };
    const request = { key: 'a', rangeEnd: '\x00', sortTarget: 'VERSION', sortOrder: 'ASCEND' };
    const kvs = (keys: string[]) => keys.map((key) => ({ key: Buffer.from(key), version: '1' }));
    const response = (keys: string[]) => ({ ok: true as const, value: { header: { revision: '9' }, kvs: kvs(keys), count: String(keys.length), more: false } });
    const many = Array.from({ length: 13 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    const shuffled = [...many].reverse();
    const tied = compareOutcomes(0, range, request, response(many), response(shuffled), side('tessera'));
    assert.deepEqual(tied, { mismatches: [], divergences: ['unstable-sort-ties'] });
    const few = compareOutcomes(0, range, request, response(many.slice(0, 12)), response(shuffled.slice(1)), side('tessera'));
    assert.equal(few.mismatches.length, 1, 'up to 12 results Go sorts stably: order must match');
  });

  test('compares watcher logs event by event', () => {
    const event = (value: string): WatchEntry => ({ type: 'event', event: { type: 'PUT', kv: { key: Buffer.from('a'), value: Buffer.from(value) } } });
    const etcd = side('etcd', {}, new Map([[4, [event('1'), event('2')]]]));
    const tessera = side('tessera', {}, new Map([[4, [event('1')]]]));
    const { mismatches } = compareWatchLogs(9, etcd, tessera, new Map([[4, { startRevision: 0 }]]), new Set());
    assert.equal(mismatches.length, 1);
    assert.match(mismatches[0].differences.join(), /length: 2 vs 1/);
  });

  test('generates the same ops from the same seed, and different ones from another', () => {
    assert.deepEqual(generateOps(5, 300), generateOps(5, 300));
    assert.notDeepEqual(generateOps(5, 300), generateOps(6, 300));
    const kinds = new Set(generateOps(5, 1000).map((op) => op.kind));
    for (const kind of ['put', 'range', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke', 'leaseTimeToLive', 'leaseLeases', 'leaseKeepAlive', 'hashKV', 'watchCreate', 'watchCancel', 'watchCheck']) {
      assert.ok(kinds.has(kind as Op['kind']), `seed 5 generates ${kind}`);
    }
  });
});
