// Unit tests for the datadriven reader/writer and the diff used by the Raft scenario runner.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DataDrivenParseError,
  directivesOf,
  lineDiff,
  parseCommandLine,
  parseDataDriven,
  serializeDataDriven,
  trimOutput,
} from './datadriven.ts';

test('parseCommandLine: bare keys, key=value, key=(list)', () => {
  const { cmd, args } = parseCommandLine('add-nodes 3 voters=(1,2, 3) learners=() index=10 checkquorum=true');
  assert.equal(cmd, 'add-nodes');
  assert.deepEqual(args, [
    { key: '3', vals: [] },
    { key: 'voters', vals: ['1', '2', '3'] },
    { key: 'learners', vals: [] },
    { key: 'index', vals: ['10'] },
    { key: 'checkquorum', vals: ['true'] },
  ]);
});

test('parseCommandLine: command only, extra spaces', () => {
  assert.deepEqual(parseCommandLine('  raft-state  '), { cmd: 'raft-state', args: [] });
  assert.deepEqual(parseCommandLine('deliver-msgs  1   drop=(2,3)').args, [
    { key: '1', vals: [] },
    { key: 'drop', vals: ['2', '3'] },
  ]);
});

test('parseCommandLine: unbalanced parenthesis is an error', () => {
  assert.throws(() => parseCommandLine('add-nodes 3 voters=(1,2'), DataDrivenParseError);
  assert.throws(() => parseCommandLine('   '), DataDrivenParseError);
});

const SAMPLE = `# A comment.
# Second line.

add-nodes 3 voters=(1,2,3) index=2
----
ok

propose-conf-change 1 transition=explicit
r1 v4
----
ok

stabilize
----
> 1 handling Ready
  Ready MustSync=true:
  Lead:0 State:StateCandidate

# trailing comment
raft-state
----
----
line one

line three
----
----
`;

test('parseDataDriven: directives, input lines, comments, double separator', () => {
  const chunks = parseDataDriven(SAMPLE);
  const ds = directivesOf(chunks);
  assert.equal(ds.length, 4);
  assert.equal(ds[0].cmd, 'add-nodes');
  assert.equal(ds[0].line, 4);
  assert.equal(ds[0].expected, 'ok');
  assert.equal(ds[1].input, 'r1 v4');
  assert.deepEqual(ds[1].args, [
    { key: '1', vals: [] },
    { key: 'transition', vals: ['explicit'] },
  ]);
  assert.equal(ds[2].expected, '> 1 handling Ready\n  Ready MustSync=true:\n  Lead:0 State:StateCandidate');
  assert.equal(ds[3].cmd, 'raft-state');
  assert.equal(ds[3].expected, 'line one\n\nline three');
  assert.equal(chunks[0].kind, 'text');
});

test('serializeDataDriven round-trips a file exactly', () => {
  assert.equal(serializeDataDriven(parseDataDriven(SAMPLE)), SAMPLE);
});

test('serializeDataDriven replaces outputs and picks the separator form by content', () => {
  const chunks = parseDataDriven(SAMPLE);
  const rewritten = serializeDataDriven(chunks, ['changed', 'ok', 'a\n\nb', 'single']);
  const again = directivesOf(parseDataDriven(rewritten));
  assert.deepEqual(
    again.map((d) => d.expected),
    ['changed', 'ok', 'a\n\nb', 'single'],
  );
  assert.match(rewritten, /stabilize\n----\n----\na\n\nb\n----\n----\n/);
  assert.match(rewritten, /raft-state\n----\nsingle\n/);
  assert.throws(() => serializeDataDriven(chunks, ['only one']), DataDrivenParseError);
});

test('parseDataDriven: line continuation and missing separator', () => {
  const ds = directivesOf(parseDataDriven('add-nodes 3 \\\nvoters=(1,2,3)\n----\nok\n'));
  assert.equal(ds[0].cmdLine, 'add-nodes 3 voters=(1,2,3)');
  assert.deepEqual(ds[0].args[1], { key: 'voters', vals: ['1', '2', '3'] });
  assert.throws(() => parseDataDriven('campaign 1\nok\n'), DataDrivenParseError);
  assert.throws(() => parseDataDriven('campaign 1\n----\n----\nnever closed\n'), DataDrivenParseError);
});

test('parseDataDriven: empty expected output and end of file without newline', () => {
  const ds = directivesOf(parseDataDriven('campaign 1\n----\n\nstatus 1\n----\nx'));
  assert.equal(ds[0].expected, '');
  assert.equal(ds[1].expected, 'x');
});

test('trimOutput drops trailing spaces and newlines only', () => {
  assert.equal(trimOutput('  a  \n b\n\n'), '  a\n b');
});

test('lineDiff marks removed and added lines with context', () => {
  const expected = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].join('\n');
  const actual = ['a', 'b', 'c', 'd', 'X', 'f', 'g', 'h', 'i'].join('\n');
  const diff = lineDiff(expected, actual, 1);
  assert.equal(diff, ['@@ ... @@', ' d', '-e', '+X', ' f', '@@ ... @@'].join('\n'));
  assert.equal(lineDiff('same', 'same', 1), '@@ ... @@');
  assert.equal(lineDiff('', 'new'), '+new');
});
