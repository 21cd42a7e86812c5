// Short real chaos runs (part of npm test): a 3-node cluster of real processes, the register
// workload, the nemesis killing nodes and partitioning the network, then slowing and failing
// fsyncs, replacing members, moving the leader and skewing clocks; the history must check out.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runChaos, supportsFaultInjection } from '../../src/chaos/index.ts';

describe('chaos: register under kill and partition', { timeout: 120_000 }, () => {
  it('stays linearizable, loses nothing, and recovers once healed', async () => {
    const lines: string[] = [];
    const result = await runChaos({
      workload: 'register',
      faults: ['kill', 'partition'],
      timeSec: 20,
      seed: 42,
      workers: 8,
      timing: { quietMs: [1_000, 2_000], faultMs: [2_500, 4_000], pauseMinMs: 1_500 },
      checkTimeoutMs: 20_000,
      log: (line) => lines.push(line),
    });
    const context = `${result.summary}\n${result.problems.join('\n')}\nreport: ${result.dir}/report.txt\n${lines.join('\n')}`;
    assert.match(result.summary, /^chaos: \d+ ops, register, linearizable=(yes|no|unknown), lost=\d+, duplicated=\d+$/);
    assert.ok(result.ops > 200, `too few ops to mean anything:\n${context}`);
    assert.ok(result.faults.kill >= 1, `no kill was injected:\n${context}`);
    if (supportsFaultInjection()) assert.ok(result.faults.partition >= 1, `no partition was injected:\n${context}`);
    else assert.deepEqual(result.unavailableFaults, ['partition']);
    assert.equal(result.linearizable, 'yes', context);
    assert.equal(result.lost, 0, context);
    assert.equal(result.duplicated, 0, context);
    assert.deepEqual(result.problems, [], context);
    assert.ok(result.ok, context);
    for (const file of ['history.jsonl', 'nemesis.jsonl', 'report.txt', 'timeline.html']) {
      assert.ok(existsSync(join(result.dir, file)), `${file} missing`);
    }
    assert.match(readFileSync(join(result.dir, 'report.txt'), 'utf8'), /verdict: PASS/);
    rmSync(result.dir, { recursive: true, force: true });
  });
});

describe('chaos: register under disk faults, member replacement, leader transfers and clock skew', { timeout: 120_000 }, () => {
  it('stays linearizable, loses nothing, heals to three voters and recovers', async () => {
    const lines: string[] = [];
    const faults = ['disk', 'member', 'transfer', 'clock'] as const;
    const result = await runChaos({
      workload: 'register',
      faults: [...faults],
      timeSec: 22,
      seed: 7,
      workers: 8,
      timing: { quietMs: [800, 1_500], faultMs: [2_000, 3_000], pauseMinMs: 1_500 },
      checkTimeoutMs: 20_000,
      log: (line) => lines.push(line),
    });
    const context = `${result.summary}\n${result.problems.join('\n')}\nreport: ${result.dir}/report.txt\n${lines.join('\n')}`;
    assert.ok(result.ops > 200, `too few ops to mean anything:\n${context}`);
    for (const kind of faults) assert.ok(result.faults[kind] >= 1, `no ${kind} fault was injected:\n${context}`);
    assert.ok(lines.some((line) => /joined as member \d+ and serves/.test(line)), `no replacement member joined:\n${context}`);
    assert.equal(result.linearizable, 'yes', context);
    assert.equal(result.lost, 0, context);
    assert.equal(result.duplicated, 0, context);
    assert.deepEqual(result.problems, [], context);
    assert.ok(result.ok, context);
    rmSync(result.dir, { recursive: true, force: true });
  });
});
