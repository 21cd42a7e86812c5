// Compact, etcd-style text for Raft messages, entries, Ready and configuration in scenario tests
// (after etcd-io/raft's util.go DescribeMessage/DescribeReady). Only the fields a type carries are printed.

import type {
  ConfChange,
  ConfChangeSingle,
  ConfState,
  Entry,
  HardState,
  Message,
  MessageType,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SoftState,
} from '../../../src/raft/index.ts';

/** Our message discriminants under etcd's names, which are what scenario files use (`type=MsgApp`). */
export const MESSAGE_TYPE_NAMES: Record<MessageType, string> = {
  app: 'MsgApp',
  appResp: 'MsgAppResp',
  vote: 'MsgVote',
  voteResp: 'MsgVoteResp',
  preVote: 'MsgPreVote',
  preVoteResp: 'MsgPreVoteResp',
  heartbeat: 'MsgHeartbeat',
  heartbeatResp: 'MsgHeartbeatResp',
  snap: 'MsgSnap',
  timeoutNow: 'MsgTimeoutNow',
  prop: 'MsgProp',
  readIndex: 'MsgReadIndex',
  readIndexResp: 'MsgReadIndexResp',
  transferLeader: 'MsgTransferLeader',
  durable: 'MsgDurable',
};

export function messageTypeFromName(name: string): MessageType {
  for (const [type, etcdName] of Object.entries(MESSAGE_TYPE_NAMES)) {
    if (etcdName === name || type === name) return type as MessageType;
  }
  throw new Error(
    `unknown message type ${name} (use etcd names: ${Object.values(MESSAGE_TYPE_NAMES).join(', ')})`,
  );
}

export const ROLE_NAMES: Record<Role, string> = {
  follower: 'StateFollower',
  preCandidate: 'StatePreCandidate',
  candidate: 'StateCandidate',
  leader: 'StateLeader',
};

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Go's %q for the text our scenarios use. */
export function quoteBytes(data: Uint8Array): string {
  return JSON.stringify(utf8.decode(data));
}

/** etcd's ConfChangesToString: `v4` add voter, `l5` add learner, `r2` remove. */
export function describeConfChanges(changes: ConfChangeSingle[]): string {
  const letters: Record<ConfChangeSingle['type'], string> = {
    addNode: 'v',
    addLearner: 'l',
    removeNode: 'r',
  };
  return changes.map((c) => `${letters[c.type]}${c.nodeId}`).join(' ');
}

/** Conf entries are described through `decode` (the core's decodeConfChange), injected to keep this file core-free. */
export type ConfChangeDecoder = (data: Uint8Array) => ConfChange;

export function describeConfChange(cc: ConfChange): string {
  const parts = [describeConfChanges(cc.changes)];
  if (cc.transition !== 'auto') parts.push(`transition=${cc.transition}`);
  return parts.filter((p) => p !== '').join(' ');
}

export function describeEntry(entry: Entry, decode: ConfChangeDecoder): string {
  let formatted: string;
  if (entry.type === 'normal') {
    formatted = quoteBytes(entry.data);
  } else {
    try {
      formatted = describeConfChange(decode(entry.data));
    } catch (error) {
      formatted = `<undecodable: ${(error as Error).message}>`;
    }
  }
  const typeName = entry.type === 'normal' ? 'EntryNormal' : 'EntryConfChangeV2';
  return `${entry.term}/${entry.index} ${typeName}${formatted === '' ? '' : ' ' + formatted}`;
}

export function describeEntries(entries: Entry[], decode: ConfChangeDecoder): string[] {
  return entries.map((e) => describeEntry(e, decode));
}

function ids(list: readonly number[]): string {
  return [...list].sort((x, y) => x - y).join(' ');
}

export function describeConfState(cs: ConfState): string {
  return (
    `Voters:[${ids(cs.voters)}] VotersOutgoing:[${ids(cs.votersOutgoing)}] ` +
    `Learners:[${ids(cs.learners)}] LearnersNext:[${ids(cs.learnersNext)}] AutoLeave:${cs.autoLeave}`
  );
}

/** etcd's tracker.Config string: `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(1) autoleave`. */
export function describeConfig(cs: ConfState): string {
  let out = `voters=(${ids(cs.voters)})`;
  if (cs.votersOutgoing.length > 0) out += `&&(${ids(cs.votersOutgoing)})`;
  if (cs.learners.length > 0) out += ` learners=(${ids(cs.learners)})`;
  if (cs.learnersNext.length > 0) out += ` learners_next=(${ids(cs.learnersNext)})`;
  if (cs.autoLeave) out += ' autoleave';
  return out;
}

export function describeSnapshot(snap: Snapshot): string {
  const m = snap.metadata;
  return `Index:${m.index} Term:${m.term} ConfState:${describeConfState(m.confState)}`;
}

export function describeHardState(hs: HardState): string {
  return `Term:${hs.term}${hs.vote !== 0 ? ` Vote:${hs.vote}` : ''} Commit:${hs.commit}`;
}

export function describeSoftState(ss: SoftState): string {
  return `Lead:${ss.leader} State:${ROLE_NAMES[ss.role]}`;
}

function describeReadState(rs: ReadState): string {
  return `Index:${rs.index} Context:${quoteBytes(rs.context)}`;
}

function describeEntryList(entries: Entry[], decode: ConfChangeDecoder, indent: string): string {
  if (entries.length === 0) return '';
  if (entries.length === 1) return ` Entries:[${describeEntry(entries[0], decode)}]`;
  return ` Entries:[${entries.map((e) => `\n${indent}  ${describeEntry(e, decode)}`).join('')}\n${indent}]`;
}

/** One message, e.g. `1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal "prop_1"]`. */
export function describeMessage(m: Message, decode: ConfChangeDecoder, indent = ''): string {
  const head = `${m.from}->${m.to} ${MESSAGE_TYPE_NAMES[m.type]} Term:${m.term}`;
  const commit = (c: number) => (c !== 0 ? ` Commit:${c}` : '');
  const context = (c: Uint8Array) => (c.length > 0 ? ` Context:${quoteBytes(c)}` : '');
  switch (m.type) {
    case 'app':
      return `${head} Log:${m.logTerm}/${m.index}${commit(m.commit)}${describeEntryList(m.entries, decode, indent)}`;
    case 'appResp':
      return `${head} Log:${m.logTerm}/${m.index}${m.reject ? ` Rejected (Hint: ${m.rejectHint})` : ''}`;
    case 'vote':
    case 'preVote':
      return `${head} Log:${m.logTerm}/${m.index}${m.transfer ? ' Transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head}${m.reject ? ' Rejected' : ''}`;
    case 'heartbeat':
      return `${head}${commit(m.commit)}${context(m.context)}`;
    case 'heartbeatResp':
      return `${head}${context(m.context)}`;
    case 'snap':
      return `${head}\n${indent}  Snapshot: ${describeSnapshot(m.snapshot)}`;
    case 'timeoutNow':
      return head;
    case 'prop':
      return `${head}${describeEntryList(m.entries, decode, indent)}`;
    case 'readIndex':
      return `${head}${context(m.context)}`;
    case 'readIndexResp':
      return `${head} Index:${m.index}${context(m.context)}`;
    case 'transferLeader':
      return `${head} Transferee:${m.transferee}`;
    case 'durable':
      return `${head} Index:${m.index}`;
  }
}

/** A Ready as etcd prints it: `Ready MustSync=...:` then only the non-empty parts; `<empty Ready>` if none. */
export function describeReady(rd: Ready, decode: ConfChangeDecoder): string[] {
  const out: string[] = [];
  if (rd.softState) out.push(describeSoftState(rd.softState));
  if (rd.hardState) out.push(`HardState ${describeHardState(rd.hardState)}`);
  if (rd.readStates.length > 0) out.push(`ReadStates [${rd.readStates.map(describeReadState).join(', ')}]`);
  if (rd.entries.length > 0) out.push('Entries:', ...describeEntries(rd.entries, decode));
  if (rd.snapshot) out.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.committedEntries.length > 0)
    out.push('CommittedEntries:', ...describeEntries(rd.committedEntries, decode));
  if (rd.messages.length > 0) out.push('Messages:', ...rd.messages.map((m) => describeMessage(m, decode)));
  if (out.length === 0) return ['<empty Ready>'];
  return [`Ready MustSync=${rd.mustSync}:`, ...out];
}
