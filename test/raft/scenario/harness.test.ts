// Unit tests for the scenario harness itself: argument parsing, errors, the link filter, determinism.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { directivesOf, parseDataDriven } from './datadriven.ts';
import type { Directive } from './datadriven.ts';
import { InteractionEnv, ScenarioError, parseConfChanges } from './harness.ts';

function run(env: InteractionEnv, script: string): string[] {
  return directivesOf(parseDataDriven(script)).map((d: Directive) => env.handle(d));
}

test('parseConfChanges: etcd tokens', () => {
  assert.deepEqual(parseConfChanges(['v4', 'l5', 'r2']), [
    { type: 'addNode', nodeId: 4 },
    { type: 'addLearner', nodeId: 5 },
    { type: 'removeNode', nodeId: 2 },
  ]);
  assert.deepEqual(parseConfChanges([]), []);
  assert.throws(() => parseConfChanges(['u3']), /update \(uN\) is not supported/);
  assert.throws(() => parseConfChanges(['x3']), ScenarioError);
  assert.throws(() => parseConfChanges(['v0']), ScenarioError);
});

test('script mistakes fail loudly instead of printing', () => {
  const env = new InteractionEnv();
  assert.throws(() => run(env, 'no-such-command\n----\nok\n'), /unknown command/);
  assert.throws(() => run(env, 'campaign 1\n----\nok\n'), /no node 1/);
  assert.throws(() => run(env, 'add-nodes 1 bogus=1\n----\nok\n'), /unknown argument bogus/);
  assert.throws(() => run(env, 'add-nodes 1 readonly=maybe\n----\nok\n'), ScenarioError);
});

test('a refused proposal is output, not a failure', () => {
  const env = new InteractionEnv();
  const [, out] = run(env, 'add-nodes 3 voters=(1,2,3) index=2\n----\n\npropose 2 x\n----\n');
  assert.match(out, /^error: ProposalDroppedError: /);
});

test('partition drops messages across cut links at delivery, heal restores them', () => {
  const env = new InteractionEnv();
  const script = [
    'add-nodes 3 voters=(1,2,3) index=2',
    'partition 1 2,3',
    'campaign 1',
    'stabilize',
    'heal',
    'campaign 1',
    'stabilize',
    'raft-state',
  ]
    .map((c) => `${c}\n----\n`)
    .join('\n');
  const out = run(env, script);
  assert.match(out[3], /dropped \(partitioned\): 1->2 MsgVote Term:1/);
  assert.doesNotMatch(out[3], /StateLeader/);
  assert.match(out[7], /^1: StateLeader \(Voter\) Term:2 Lead:1$/m);
});

test('the same script gives the same output twice (no hidden randomness)', () => {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'checkquorum.txt');
  const script = readFileSync(path, 'utf8');
  assert.deepEqual(run(new InteractionEnv(), script), run(new InteractionEnv(), script));
});

test('commands list covers the documented set', () => {
  const commands = InteractionEnv.commands();
  for (const c of [
    'add-nodes',
    'campaign',
    'tick',
    'tick-election',
    'tick-heartbeat',
    'propose',
    'propose-conf-change',
    'process-ready',
    'deliver-msgs',
    'stabilize',
    'status',
    'raft-log',
    'raft-state',
    'partition',
    'isolate',
    'heal',
    'compact',
    'snapshot',
    'read-index',
    'transfer-leadership',
    'report-unreachable',
    'report-snapshot',
    'restart',
    'set-election-jitter',
  ]) {
    assert.ok(commands.includes(c), `missing command ${c}`);
  }
});
