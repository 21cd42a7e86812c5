// Runs the Raft scenario files test/raft/testdata/*.txt (etcd-io/raft's datadriven style) through the
// interaction harness and compares every command's output exactly. REWRITE=1 rewrites expected outputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  directivesOf,
  lineDiff,
  parseDataDriven,
  serializeDataDriven,
  trimOutput,
} from './scenario/datadriven.ts';
import { InteractionEnv } from './scenario/harness.ts';

const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const REWRITE = process.env.REWRITE === '1' || process.env.REWRITE === 'true';
/** Only files whose name contains this run (SCENARIO=prevote), to keep iterations short. */
const FILTER = process.env.SCENARIO ?? '';
/** Mismatches reported per file before the rest are summarized; a bound on the failure message. */
const MAX_REPORTED_MISMATCHES = 5;

const files = readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.txt') && f.includes(FILTER))
  .sort();

test('scenario files exist', () => {
  assert.ok(files.length > 0, `no scenario files in ${TESTDATA}`);
});

for (const file of files) {
  test(`scenario ${file}`, () => {
    const path = join(TESTDATA, file);
    const chunks = parseDataDriven(readFileSync(path, 'utf8'));
    const env = new InteractionEnv();
    const outputs: string[] = [];
    const mismatches: string[] = [];
    for (const d of directivesOf(chunks)) {
      let actual: string;
      try {
        actual = trimOutput(env.handle(d));
      } catch (error) {
        const e = error as Error;
        e.message = `${file}:${d.line}: ${d.cmdLine}: ${e.message}`;
        throw e;
      }
      outputs.push(actual);
      const expected = trimOutput(d.expected);
      if (!REWRITE && actual !== expected) {
        mismatches.push(`${file}:${d.line}: ${d.cmdLine}\n${lineDiff(expected, actual)}`);
      }
    }
    if (REWRITE) {
      writeFileSync(path, serializeDataDriven(chunks, outputs));
      return;
    }
    if (mismatches.length > 0) {
      const shown = mismatches.slice(0, MAX_REPORTED_MISMATCHES).join('\n\n');
      const more =
        mismatches.length > MAX_REPORTED_MISMATCHES
          ? `\n\n... and ${mismatches.length - MAX_REPORTED_MISMATCHES} more`
          : '';
      assert.fail(`${mismatches.length} command(s) differ (- expected, + actual):\n\n${shown}${more}`);
    }
  });
}
