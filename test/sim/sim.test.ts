// The cluster simulator end to end: a quick run of many seeds passes, each injected core fault is
// reported with the invariant it breaks, a seed replays to the same trace, and the CLI reports.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runSimulation } from '../../src/sim/index.ts';
import type { Invariant, SimOptions, SimResult } from '../../src/sim/index.ts';

/** Seeds and steps of the quick run: about 20 s on the 2-core machine. */
const QUICK_SEEDS = 240;
const QUICK_STEPS = 300;

function describeFailure(result: SimResult): string {
  const failure = result.failure;
  if (failure === null) return `seed ${result.seed}: ok`;
  return `seed ${result.seed} (${result.nodes} nodes, ${result.schedule}): ${failure.message}\n${failure.trace.slice(-15).join('\n')}`;
}

/** Runs seeds from 1 until one fails; returns the failures seen (at most `maxFailures`). */
function failuresWithin(seeds: number, options: Omit<SimOptions, 'seed'>, maxFailures = 1): SimResult[] {
  const failures: SimResult[] = [];
  for (let seed = 1; seed <= seeds && failures.length < maxFailures; seed++) {
    const result = runSimulation({ ...options, seed });
    if (!result.ok) failures.push(result);
  }
  return failures;
}

function assertCaught(failures: SimResult[], expected: readonly Invariant[], what: string): void {
  assert.ok(failures.length > 0, `${what}: no seed failed`);
  const invariants = failures.map((result) => result.failure?.invariant);
  assert.ok(
    invariants.some((invariant) => invariant !== undefined && expected.includes(invariant)),
    `${what}: expected ${expected.join(' or ')}, got:\n${failures.map(describeFailure).join('\n')}`,
  );
}

describe('cluster simulator', () => {
  it(`passes ${QUICK_SEEDS} seeds (3, 5 and 7 nodes, ${QUICK_STEPS} steps each)`, () => {
    const failed: string[] = [];
    const sizes = new Set<number>();
    let writes = 0;
    for (let seed = 1; seed <= QUICK_SEEDS; seed++) {
      const result = runSimulation({ seed, steps: QUICK_STEPS });
      sizes.add(result.nodes);
      writes += result.stats.writesApplied;
      if (!result.ok) failed.push(describeFailure(result));
    }
    assert.deepEqual(failed, []);
    assert.deepEqual([...sizes].sort(), [3, 5, 7]);
    assert.ok(writes > QUICK_SEEDS * 10, `only ${writes} writes applied in ${QUICK_SEEDS} seeds`);
  });

  it('replays a seed exactly: same seed, same trace hash', () => {
    for (const options of [{ seed: 7 }, { seed: 8, nodes: 3 }, { seed: 4, schedule: 'figure8' as const }]) {
      const first = runSimulation({ ...options, steps: 200 });
      const second = runSimulation({ ...options, steps: 200 });
      assert.equal(first.traceHash, second.traceHash, `seed ${options.seed}`);
      assert.deepEqual(first.stats, second.stats);
    }
    assert.notEqual(
      runSimulation({ seed: 7, steps: 200 }).traceHash,
      runSimulation({ seed: 10, steps: 200 }).traceHash,
    );
  });

  it('runs Figure 8 on a correct core without a violation', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const result = runSimulation({ seed, schedule: 'figure8', steps: 0 });
      assert.ok(result.ok, describeFailure(result));
    }
  });
});

describe('cluster simulator catches injected faults', () => {
  it('commitOldTermByCounting: leader completeness (Figure 8, and within 24 default seeds)', () => {
    const scripted = runSimulation({
      seed: 1,
      schedule: 'figure8',
      steps: 0,
      testingFault: 'commitOldTermByCounting',
    });
    assertCaught([scripted], ['leader completeness'], 'figure8 schedule');
    assertCaught(
      failuresWithin(24, { testingFault: 'commitOldTermByCounting', steps: QUICK_STEPS }),
      ['leader completeness'],
      'default seeds',
    );
  });

  it('skipAppendConsistencyCheck: log matching (Figure 8, and within 24 default seeds)', () => {
    const scripted = runSimulation({
      seed: 1,
      schedule: 'figure8',
      steps: 0,
      testingFault: 'skipAppendConsistencyCheck',
    });
    assertCaught([scripted], ['log matching'], 'figure8 schedule');
    assertCaught(
      failuresWithin(24, { testingFault: 'skipAppendConsistencyCheck', steps: QUICK_STEPS }),
      ['log matching'],
      'default seeds',
    );
  });

  it('grantEveryVote: vote safety, and election safety when the vote check is off', () => {
    assertCaught(
      failuresWithin(10, { testingFault: 'grantEveryVote', steps: QUICK_STEPS }),
      ['vote safety'],
      'vote check',
    );
    const withoutVoteCheck = failuresWithin(
      40,
      { testingFault: 'grantEveryVote', steps: QUICK_STEPS, ignore: ['vote safety', 'leader completeness'] },
      40,
    );
    assertCaught(withoutVoteCheck, ['election safety'], 'election check');
  });

  it("readBelowDurableNotices: read linearizability (a follower acknowledged a write on the leader's durable notice)", () => {
    assertCaught(
      failuresWithin(120, { testingFault: 'readBelowDurableNotices', nodes: 3, steps: QUICK_STEPS }),
      ['read linearizability'],
      '3-node seeds',
    );
  });

  it('a driver serving reads before applying to their index: read linearizability', () => {
    assertCaught(
      failuresWithin(10, { driverFault: 'serveReadsBeforeApplied', steps: QUICK_STEPS }),
      ['read linearizability'],
      'read check',
    );
  });
});

describe('npm run sim', () => {
  function sim(...args: string[]): { status: number | null; lines: string[] } {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/sim/main.ts', ...args], {
      encoding: 'utf8',
    });
    return { status: run.status, lines: run.stdout.trimEnd().split('\n') };
  }

  it('ends with the summary line and exit code 0 when every seed passes', () => {
    const { status, lines } = sim('--seeds', '3', '--start', '1', '--steps', '50');
    assert.equal(lines.at(-1), 'sim: 3 seeds, 0 failed');
    assert.equal(status, 0);
  });

  it('prints the broken invariant and the replay command of a failing seed, and exits non-zero', () => {
    const { status, lines } = sim(
      '--seeds',
      '2',
      '--start',
      '3',
      '--schedule',
      'figure8',
      '--fault',
      'commitOldTermByCounting',
      '--steps',
      '0',
    );
    assert.equal(lines.at(-1), 'sim: 2 seeds, 2 failed');
    assert.ok(lines.includes('  invariant broken: leader completeness'), lines.join('\n'));
    assert.ok(
      lines.includes(
        '  replay: npm run sim -- --seeds 1 --start 3 --nodes 5 --steps 0 --schedule figure8 --fault commitOldTermByCounting --verbose',
      ),
      lines.join('\n'),
    );
    assert.equal(status, 1);
  });

  it('rejects bad arguments with a usage message', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/sim/main.ts', '--nodes', '4'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--nodes must be 3, 5 or 7/);
  });
});
