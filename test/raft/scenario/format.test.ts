// Unit tests for the etcd-style text of messages, entries and Ready in scenario outputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfChange, Entry, Message, Ready } from '../../../src/raft/index.ts';
import {
  describeConfig,
  describeEntry,
  describeMessage,
  describeReady,
  messageTypeFromName,
} from './format.ts';

const enc = (s: string) => new TextEncoder().encode(s);
/** A stand-in for the core's decodeConfChange: the tests put JSON in conf entries. */
const decode = (data: Uint8Array): ConfChange => {
  const parsed = JSON.parse(new TextDecoder().decode(data)) as Omit<ConfChange, 'context'>;
  return { ...parsed, context: new Uint8Array() };
};
const normal = (term: number, index: number, data: string): Entry => ({
  term,
  index,
  type: 'normal',
  data: enc(data),
});

test('entries: normal quoted, conf changes in etcd token form', () => {
  assert.equal(describeEntry(normal(1, 3, ''), decode), '1/3 EntryNormal ""');
  assert.equal(describeEntry(normal(2, 11, 'prop_1'), decode), '2/11 EntryNormal "prop_1"');
  const cc = {
    transition: 'explicit',
    changes: [
      { type: 'removeNode', nodeId: 1 },
      { type: 'addNode', nodeId: 4 },
      { type: 'addLearner', nodeId: 5 },
    ],
  };
  assert.equal(
    describeEntry({ term: 1, index: 4, type: 'conf', data: enc(JSON.stringify(cc)) }, decode),
    '1/4 EntryConfChangeV2 r1 v4 l5 transition=explicit',
  );
  const leave = { transition: 'auto', changes: [] };
  assert.equal(
    describeEntry({ term: 1, index: 5, type: 'conf', data: enc(JSON.stringify(leave)) }, decode),
    '1/5 EntryConfChangeV2',
  );
  assert.match(
    describeEntry({ term: 1, index: 6, type: 'conf', data: enc('{') }, decode),
    /^1\/6 EntryConfChangeV2 <undecodable: /,
  );
});

test('messages: one line per type, only the fields the type carries', () => {
  const cases: [Message, string][] = [
    [
      {
        type: 'app',
        from: 1,
        to: 2,
        term: 1,
        logTerm: 1,
        index: 10,
        commit: 10,
        entries: [normal(1, 11, 'prop_1')],
      },
      '1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal "prop_1"]',
    ],
    [
      { type: 'app', from: 1, to: 2, term: 1, logTerm: 0, index: 0, commit: 0, entries: [] },
      '1->2 MsgApp Term:1 Log:0/0',
    ],
    [
      { type: 'appResp', from: 2, to: 1, term: 1, index: 3, reject: false, rejectHint: 0, logTerm: 0 },
      '2->1 MsgAppResp Term:1 Log:0/3',
    ],
    [
      { type: 'appResp', from: 2, to: 1, term: 3, index: 7, reject: true, rejectHint: 5, logTerm: 2 },
      '2->1 MsgAppResp Term:3 Log:2/7 Rejected (Hint: 5)',
    ],
    [
      { type: 'vote', from: 1, to: 2, term: 2, logTerm: 1, index: 11, transfer: false },
      '1->2 MsgVote Term:2 Log:1/11',
    ],
    [
      { type: 'preVote', from: 1, to: 2, term: 2, logTerm: 1, index: 11, transfer: true },
      '1->2 MsgPreVote Term:2 Log:1/11 Transfer',
    ],
    [{ type: 'voteResp', from: 2, to: 1, term: 2, reject: true }, '2->1 MsgVoteResp Term:2 Rejected'],
    [{ type: 'preVoteResp', from: 2, to: 1, term: 2, reject: false }, '2->1 MsgPreVoteResp Term:2'],
    [
      { type: 'heartbeat', from: 1, to: 2, term: 1, commit: 11, context: enc('') },
      '1->2 MsgHeartbeat Term:1 Commit:11',
    ],
    [
      { type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, context: enc('r1') },
      '1->2 MsgHeartbeat Term:1 Context:"r1"',
    ],
    [
      { type: 'heartbeatResp', from: 2, to: 1, term: 1, context: enc('r1') },
      '2->1 MsgHeartbeatResp Term:1 Context:"r1"',
    ],
    [{ type: 'timeoutNow', from: 1, to: 3, term: 1 }, '1->3 MsgTimeoutNow Term:1'],
    [
      { type: 'prop', from: 2, to: 1, term: 0, entries: [normal(0, 0, 'x')] },
      '2->1 MsgProp Term:0 Entries:[0/0 EntryNormal "x"]',
    ],
    [
      { type: 'readIndex', from: 2, to: 1, term: 0, context: enc('c') },
      '2->1 MsgReadIndex Term:0 Context:"c"',
    ],
    [
      { type: 'readIndexResp', from: 1, to: 2, term: 1, index: 12, context: enc('c') },
      '1->2 MsgReadIndexResp Term:1 Index:12 Context:"c"',
    ],
    [
      { type: 'transferLeader', from: 3, to: 1, term: 1, transferee: 3 },
      '3->1 MsgTransferLeader Term:1 Transferee:3',
    ],
  ];
  for (const [m, want] of cases) assert.equal(describeMessage(m, decode), want);
});

test('messages: several entries go on their own lines; snapshots on a second line', () => {
  const app: Message = {
    type: 'app',
    from: 1,
    to: 2,
    term: 1,
    logTerm: 1,
    index: 3,
    commit: 3,
    entries: [normal(1, 4, 'a'), normal(1, 5, 'b')],
  };
  assert.equal(
    describeMessage(app, decode),
    '1->2 MsgApp Term:1 Log:1/3 Commit:3 Entries:[\n  1/4 EntryNormal "a"\n  1/5 EntryNormal "b"\n]',
  );
  const confState = {
    voters: [3, 2, 4],
    votersOutgoing: [1, 2, 3],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  };
  const snap: Message = {
    type: 'snap',
    from: 1,
    to: 4,
    term: 1,
    snapshot: { metadata: { index: 4, term: 1, confState }, data: enc('') },
  };
  assert.equal(
    describeMessage(snap, decode),
    '1->4 MsgSnap Term:1\n  Snapshot: Index:4 Term:1 ConfState:Voters:[2 3 4] VotersOutgoing:[1 2 3] Learners:[] LearnersNext:[] AutoLeave:false',
  );
});

test('Ready: only non-empty parts, etcd order; empty Ready', () => {
  const rd: Ready = {
    softState: { leader: 1, role: 'leader' },
    hardState: { term: 1, vote: 1, commit: 3 },
    readStates: [{ index: 3, context: enc('r') }],
    entries: [normal(1, 3, '')],
    snapshot: null,
    committedEntries: [normal(1, 3, '')],
    messages: [{ type: 'app', from: 1, to: 2, term: 1, logTerm: 1, index: 3, commit: 3, entries: [] }],
    mustSync: true,
  };
  assert.deepEqual(describeReady(rd, decode), [
    'Ready MustSync=true:',
    'Lead:1 State:StateLeader',
    'HardState Term:1 Vote:1 Commit:3',
    'ReadStates [Index:3 Context:"r"]',
    'Entries:',
    '1/3 EntryNormal ""',
    'CommittedEntries:',
    '1/3 EntryNormal ""',
    'Messages:',
    '1->2 MsgApp Term:1 Log:1/3 Commit:3',
  ]);
  const empty: Ready = {
    softState: null,
    hardState: null,
    readStates: [],
    entries: [],
    snapshot: null,
    committedEntries: [],
    messages: [],
    mustSync: false,
  };
  assert.deepEqual(describeReady(empty, decode), ['<empty Ready>']);
  assert.deepEqual(describeReady({ ...empty, hardState: { term: 2, vote: 0, commit: 0 } }, decode), [
    'Ready MustSync=false:',
    'HardState Term:2 Commit:0',
  ]);
});

test('config strings and message type names', () => {
  assert.equal(
    describeConfig({
      voters: [3, 1, 2],
      votersOutgoing: [],
      learners: [],
      learnersNext: [],
      autoLeave: false,
    }),
    'voters=(1 2 3)',
  );
  assert.equal(
    describeConfig({
      voters: [2, 3, 4],
      votersOutgoing: [1, 2, 3],
      learners: [5],
      learnersNext: [1],
      autoLeave: true,
    }),
    'voters=(2 3 4)&&(1 2 3) learners=(5) learners_next=(1) autoleave',
  );
  assert.equal(messageTypeFromName('MsgApp'), 'app');
  assert.equal(messageTypeFromName('MsgPreVoteResp'), 'preVoteResp');
  assert.throws(() => messageTypeFromName('MsgNope'), /unknown message type/);
});
