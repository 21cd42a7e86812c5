// An interaction environment for scenario tests, after etcd-io/raft's rafttest.InteractionEnv:
// Raft nodes on MemoryStorage, one in-flight message queue, a link filter for partitions, and one
// handler per scenario command. Every output line is deterministic (see jitterRng).

import {
  RawNode,
  MemoryStorage,
  encodeConfChange,
  decodeConfChange,
  defaultRaftConfig,
} from '../../../src/raft/index.ts';
import type {
  ConfChange,
  ConfChangeSingle,
  ConfState,
  Entry,
  Message,
  MessageType,
  NodeId,
  RaftConfig,
  Ready,
  Rng,
  Snapshot,
} from '../../../src/raft/index.ts';
import { AssertionError } from '../../../src/util/index.ts';
import type { CmdArg, Directive } from './datadriven.ts';
import {
  ROLE_NAMES,
  describeConfChange,
  describeConfig,
  describeEntries,
  describeMessage,
  describeReady,
  describeSnapshot,
  messageTypeFromName,
} from './format.ts';

/**
 * Randomized election timeouts are drawn as `electionTicks + rng.nextInt(electionTicks)`. Each node's
 * rng answers its `jitter` (default 0, clamped below the bound), so a node's timeout is exactly
 * `electionTicks + jitter` and `tick-election` (which ticks `electionTicks` times) fires it whenever
 * jitter is 0: scenarios decide who campaigns, never chance. A node with jitter > 0 can be ticked out
 * of its leader lease without campaigning (etcd's set-randomized-election-timeout, done via the rng).
 */
export function jitterRng(holder: { jitter: number }): Rng {
  return { nextInt: (maxExclusive: number) => Math.max(0, Math.min(holder.jitter, maxExclusive - 1)) };
}

/** etcd's rafttest defaults (raftConfigStub): short timeouts keep scenario files small. */
export const DEFAULT_ELECTION_TICKS = 3;
export const DEFAULT_HEARTBEAT_TICKS = 1;
/** stabilize gives up (with an error) after this many rounds: a livelock is a bug, not a hang. */
export const MAX_STABILIZE_ROUNDS = 1000;
/** A bound on the in-flight queue; a scenario that exceeds it is broken (e.g. ticking in a loop). */
export const MAX_QUEUED_MESSAGES = 100_000;
/** Bound on nodes per environment. */
export const MAX_NODES = 64;

/** A mistake in the scenario script itself (bad arguments, unknown node): fails the test with the line. */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
}

/**
 * MemoryStorage whose snapshot() is the node's state machine as of its applied index, like
 * etcd's rafttest (snapOverrideStorage: "when you ask for a snapshot, you get the most recent
 * snapshot"). A leader therefore always sends a snapshot with the current configuration; one
 * frozen at an older configuration would be refused by a node that is not in it.
 */
export class ScenarioStorage extends MemoryStorage {
  latest: (() => Snapshot) | null = null;

  override snapshot(): Snapshot {
    return this.latest ? this.latest() : super.snapshot();
  }
}

export interface HarnessNode {
  id: NodeId;
  raw: RawNode;
  storage: ScenarioStorage;
  config: RaftConfig;
  /** Last index applied to the harness state machine (from committed entries and snapshots). */
  applied: number;
  /** The state machine: data of every applied non-empty normal entry, in order. */
  appliedData: string[];
  /** The configuration as of `applied` (returned by applyConfChange or restored from a snapshot). */
  confState: ConfState;
  /** What this node's rng answers: extra election timeout ticks, taken at the node's next timeout reset. */
  jitter: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** The state machine image carried in snapshots: the JSON list of applied data. */
function encodeState(appliedData: string[]): Uint8Array {
  return textEncoder.encode(JSON.stringify(appliedData));
}

function decodeState(data: Uint8Array): string[] {
  if (data.length === 0) return [];
  const parsed: unknown = JSON.parse(textDecoder.decode(data));
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new ScenarioError(`snapshot data is not a harness state image`);
  }
  return parsed as string[];
}

function emptyConfState(): ConfState {
  return { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

/** Errors a real application would see and handle (dropped proposal, bad conf change): printed, not fatal. */
function isFatal(error: unknown): boolean {
  return (
    error instanceof AssertionError ||
    error instanceof ScenarioError ||
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof ReferenceError ||
    !(error instanceof Error)
  );
}

type Handler = (d: Directive) => void;

interface DeliverOptions {
  reverse: boolean;
  keep: boolean;
}

export class InteractionEnv {
  /** nodes[id - 1]; ids are handed out consecutively by add-nodes, as in etcd's rafttest. */
  readonly nodes: HarnessNode[] = [];
  /** Messages sent and not yet delivered or dropped, in send order. */
  messages: Message[] = [];
  /** Links cut by `partition`, as "lo-hi". */
  private readonly cutLinks = new Set<string>();
  /** Nodes cut from everyone by `isolate`. */
  private readonly isolated = new Set<NodeId>();
  private output: string[] = [];
  private indent = '';

  private readonly handlers: Record<string, Handler> = {
    'add-nodes': (d) => this.handleAddNodes(d),
    campaign: (d) => this.node(firstInt(d)).raw.campaign(),
    compact: (d) => this.handleCompact(d),
    'deliver-msgs': (d) => this.handleDeliverMsgs(d),
    heal: (d) => this.handleHeal(d),
    isolate: (d) => nodeIds(d).forEach((id) => this.isolated.add(id)),
    partition: (d) => this.handlePartition(d),
    'process-ready': (d) => this.handleProcessReady(d),
    propose: (d) => this.handlePropose(d),
    'propose-conf-change': (d) => this.handleProposeConfChange(d),
    'raft-log': (d) => this.printRaftLog(this.node(firstInt(d))),
    'raft-state': () => this.handleRaftState(),
    'set-election-jitter': (d) => this.handleSetJitter(d),
    'read-index': (d) => this.handleReadIndex(d),
    'report-snapshot': (d) => this.handleReportSnapshot(d),
    'report-unreachable': (d) => this.handleReportUnreachable(d),
    restart: (d) => nodeIds(d).forEach((id) => this.restart(id)),
    snapshot: (d) => this.handleSnapshot(d),
    stabilize: (d) => this.stabilize(nodeIds(d)),
    status: (d) => this.handleStatus(d),
    tick: (d) => this.handleTick(d),
    'tick-election': (d) => nodeIds(d).forEach((id) => this.tick(id, this.node(id).config.electionTicks)),
    'tick-heartbeat': (d) => nodeIds(d).forEach((id) => this.tick(id, this.node(id).config.heartbeatTicks)),
    'transfer-leadership': (d) => this.handleTransferLeadership(d),
  };

  static commands(): string[] {
    return Object.keys(new InteractionEnv().handlers).sort();
  }

  /** Runs one directive and returns its output ("ok" when it printed nothing). */
  handle(d: Directive): string {
    this.output = [];
    this.indent = '';
    const handler = this.handlers[d.cmd];
    if (!handler) throw new ScenarioError(`unknown command ${JSON.stringify(d.cmd)}`);
    try {
      handler(d);
    } catch (error) {
      if (isFatal(error)) throw error;
      const e = error as Error;
      this.print(`error: ${e.name}: ${e.message}`);
    }
    return this.output.length === 0 ? 'ok' : this.output.join('\n');
  }

  // ---- output

  private print(text: string): void {
    for (const line of text.split('\n')) this.output.push(this.indent + line);
  }

  private withIndent(f: () => void): void {
    const saved = this.indent;
    this.indent += '  ';
    try {
      f();
    } finally {
      this.indent = saved;
    }
  }

  // ---- nodes

  node(id: NodeId): HarnessNode {
    const n = this.nodes[id - 1];
    if (!n) throw new ScenarioError(`no node ${id} (have 1..${this.nodes.length})`);
    return n;
  }

  private handleAddNodes(d: Directive): void {
    const count = firstInt(d);
    const voters = intVals(d, 'voters');
    const learners = intVals(d, 'learners');
    const index = optInt(d, 'index') ?? 0;
    const jitter = optInt(d, 'jitter') ?? 0;
    if (this.nodes.length + count > MAX_NODES) throw new ScenarioError(`at most ${MAX_NODES} nodes`);
    const overrides = configOverrides(d);
    for (let k = 0; k < count; k++) {
      const id = this.nodes.length + 1;
      const confState: ConfState = { ...emptyConfState(), voters: [...voters], learners: [...learners] };
      const bootstrap = voters.length + learners.length > 0;
      const storage = bootstrap ? bootstrapStorage(confState, index) : new ScenarioStorage();
      const applied = bootstrap ? index : 0;
      const holder = { jitter };
      const config = defaultRaftConfig(id, jitterRng(holder), { ...overrides, applied });
      const raw = new RawNode(config, storage);
      const node: HarnessNode = Object.assign(holder, {
        id,
        raw,
        storage,
        config,
        applied,
        appliedData: [],
        confState: bootstrap ? confState : emptyConfState(),
      });
      storage.latest = () => currentSnapshot(node);
      this.nodes.push(node);
      this.printNodeLine(node);
    }
  }

  private printNodeLine(n: HarnessNode): void {
    const st = n.raw.status();
    this.print(
      `${n.id}: ${ROLE_NAMES[st.softState.role]} Term:${st.hardState.term} Vote:${st.hardState.vote} Commit:${st.hardState.commit} ` +
        `Applied:${st.applied} LastIndex:${st.lastIndex} Config:${describeConfig(st.confState)}`,
    );
  }

  /**
   * Crash and restart: a new RawNode on the same storage. Every Ready is persisted before
   * advance(), so the node loses exactly its volatile state (role, leader, progress, pending
   * reads and proposals not yet handed out in a Ready). The state machine survives (as if it were
   * durable), so `applied` is kept. Messages already in flight stay in flight.
   */
  private restart(id: NodeId): void {
    const n = this.node(id);
    n.config = { ...n.config, applied: n.applied };
    n.raw = new RawNode(n.config, n.storage);
    this.printNodeLine(n);
  }

  private tick(id: NodeId, count: number): void {
    if (!Number.isSafeInteger(count) || count < 0 || count > 10_000)
      throw new ScenarioError(`bad tick count ${count}`);
    const raw = this.node(id).raw;
    for (let k = 0; k < count; k++) raw.tick();
  }

  private handleSetJitter(d: Directive): void {
    const [id, jitter] = bareInts(d);
    if (id === undefined || jitter === undefined)
      throw new ScenarioError(`usage: set-election-jitter <id> <ticks>`);
    this.node(id).jitter = jitter;
  }

  private handleTick(d: Directive): void {
    const [id, count] = bareInts(d);
    if (id === undefined || count === undefined) throw new ScenarioError(`usage: tick <id> <count>`);
    this.tick(id, count);
  }

  // ---- Ready handling

  private handleProcessReady(d: Directive): void {
    const ids = nodeIds(d);
    for (const id of ids) {
      if (ids.length > 1) {
        this.print(`> ${id} handling Ready`);
        this.withIndent(() => this.processReady(id));
      } else {
        this.processReady(id);
      }
    }
  }

  /** Persist, send, apply, advance: the driver loop of types.ts's Ready contract, printing as it goes. */
  processReady(id: NodeId): void {
    const n = this.node(id);
    const rd: Ready = n.raw.ready();
    this.print(describeReady(rd, decodeConfChange).join('\n'));
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.send(rd.messages);
    if (rd.snapshot) this.restoreSnapshot(n, rd.snapshot);
    for (const entry of rd.committedEntries) this.applyEntry(n, entry);
    n.raw.advance();
  }

  private send(messages: Message[]): void {
    if (this.messages.length + messages.length > MAX_QUEUED_MESSAGES) {
      throw new ScenarioError(`more than ${MAX_QUEUED_MESSAGES} messages in flight`);
    }
    // Copies: the receiver must never share entry objects or arrays with the sender's log.
    for (const m of messages) this.messages.push(structuredClone(m));
  }

  private restoreSnapshot(n: HarnessNode, snap: Snapshot): void {
    n.appliedData = decodeState(snap.data);
    n.applied = snap.metadata.index;
    n.confState = structuredClone(snap.metadata.confState);
    this.print(`${n.id} restored snapshot ${describeSnapshot(snap)}`);
  }

  private applyEntry(n: HarnessNode, entry: Entry): void {
    if (entry.index !== n.applied + 1) {
      throw new AssertionError(`node ${n.id} asked to apply ${entry.index} after ${n.applied}`);
    }
    n.applied = entry.index;
    if (entry.type === 'conf') {
      const cc = decodeConfChange(entry.data);
      const what = cc.changes.length === 0 ? 'leave joint' : describeConfChange(cc);
      try {
        n.confState = n.raw.applyConfChange(cc);
      } catch (error) {
        // The application must still advance past the entry; print and carry on, as etcd does.
        if (isFatal(error)) throw error;
        const e = error as Error;
        this.print(`${n.id} failed to apply conf change (${what}): ${e.name}: ${e.message}`);
        return;
      }
      n.storage.setConfState(n.confState); // what a restart at this applied index must start from
      this.print(`${n.id} applied conf change (${what}): config ${describeConfig(n.confState)}`);
    } else if (entry.data.length > 0) {
      n.appliedData.push(textDecoder.decode(entry.data));
    }
  }

  // ---- messages

  private isCut(from: NodeId, to: NodeId): boolean {
    if (from === to) return false;
    return this.isolated.has(from) || this.isolated.has(to) || this.cutLinks.has(linkKey(from, to));
  }

  private handleDeliverMsgs(d: Directive): void {
    let type: MessageType | null = null;
    const recipients: { id: NodeId; drop: boolean }[] = [];
    const options: DeliverOptions = { reverse: false, keep: false };
    for (const arg of d.args) {
      if (arg.vals.length === 0) recipients.push({ id: parseId(arg.key), drop: false });
      else if (arg.key === 'drop') arg.vals.forEach((v) => recipients.push({ id: parseId(v), drop: true }));
      else if (arg.key === 'type') type = messageTypeFromName(single(arg));
      else if (arg.key === 'reverse') options.reverse = parseBool(single(arg), 'reverse');
      else if (arg.key === 'keep') options.keep = parseBool(single(arg), 'keep');
      else throw new ScenarioError(`deliver-msgs: unknown argument ${arg.key}`);
    }
    const seen = new Set<NodeId>();
    for (const r of recipients) {
      if (seen.has(r.id)) throw new ScenarioError(`deliver-msgs: ${r.id} listed twice`);
      seen.add(r.id);
    }
    if (this.deliverMsgs(type, recipients, options) === 0) this.print('no messages');
  }

  /**
   * Delivers (or drops) queued messages to each recipient, in queue order (or reversed: a
   * reordering network); returns how many were handled. With `keep`, copies are delivered and
   * the originals stay queued, so a later delivery duplicates them (a duplicating network).
   */
  deliverMsgs(
    type: MessageType | null,
    recipients: { id: NodeId; drop: boolean }[],
    options: DeliverOptions = { reverse: false, keep: false },
  ): number {
    let handled = 0;
    for (const r of recipients) {
      const selected = this.messages.filter((m) => m.to === r.id && (type === null || m.type === type));
      if (!options.keep) this.messages = this.messages.filter((m) => !selected.includes(m));
      if (options.reverse) selected.reverse();
      handled += selected.length;
      for (const m of selected) this.deliverOne(options.keep ? structuredClone(m) : m, r.drop);
    }
    return handled;
  }

  private deliverOne(m: Message, drop: boolean): void {
    const text = describeMessage(m, decodeConfChange);
    if (drop) return this.print(`dropped: ${text}`);
    if (this.isCut(m.from, m.to)) return this.print(`dropped (partitioned): ${text}`);
    const target = this.nodes[m.to - 1];
    if (!target) return this.print(`dropped (no node ${m.to}): ${text}`);
    this.print(text);
    try {
      target.raw.step(m);
    } catch (error) {
      if (isFatal(error)) throw error;
      const e = error as Error;
      this.print(`error: ${e.name}: ${e.message}`);
    }
  }

  /** etcd's Stabilize: Ready on every node that has one, then deliver to every node, until quiet. */
  stabilize(ids: NodeId[]): void {
    const nodes = ids.length > 0 ? ids.map((id) => this.node(id)) : [...this.nodes];
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let done = true;
      for (const n of nodes) {
        if (!n.raw.hasReady()) continue;
        done = false;
        this.print(`> ${n.id} handling Ready`);
        this.withIndent(() => this.processReady(n.id));
      }
      for (const n of nodes) {
        if (!this.messages.some((m) => m.to === n.id)) continue;
        done = false;
        this.print(`> ${n.id} receiving messages`);
        this.withIndent(() => this.deliverMsgs(null, [{ id: n.id, drop: false }]));
      }
      if (done) return;
    }
    throw new ScenarioError(`stabilize did not converge in ${MAX_STABILIZE_ROUNDS} rounds`);
  }

  // ---- partitions

  private handlePartition(d: Directive): void {
    const groups = d.args.map((arg) => {
      if (arg.vals.length > 0) throw new ScenarioError(`partition: groups are bare lists like 1,2 or (1,2)`);
      return arg.key
        .replace(/^\(|\)$/g, '')
        .split(',')
        .filter((s) => s !== '')
        .map(parseId);
    });
    if (groups.length < 2)
      throw new ScenarioError(`partition needs at least two groups, e.g. partition 1,2 3`);
    for (let g = 0; g < groups.length; g++) {
      for (let h = g + 1; h < groups.length; h++) {
        for (const a of groups[g]) for (const b of groups[h]) this.cutLinks.add(linkKey(a, b));
      }
    }
  }

  private handleHeal(d: Directive): void {
    const ids = nodeIds(d);
    if (ids.length === 0) {
      this.cutLinks.clear();
      this.isolated.clear();
      return;
    }
    for (const id of ids) {
      this.isolated.delete(id);
      for (const key of [...this.cutLinks])
        if (key.split('-').map(Number).includes(id)) this.cutLinks.delete(key);
    }
  }

  // ---- client requests

  private handlePropose(d: Directive): void {
    const id = firstInt(d);
    if (d.args.length !== 2 || d.args[1].vals.length > 0)
      throw new ScenarioError(`usage: propose <id> <data>`);
    this.node(id).raw.propose(textEncoder.encode(d.args[1].key));
  }

  private handleProposeConfChange(d: Directive): void {
    const id = firstInt(d);
    let transition: ConfChange['transition'] = 'auto';
    const tokens: string[] = [];
    for (const arg of d.args.slice(1)) {
      if (arg.key === 'transition') {
        const t = single(arg);
        if (t !== 'auto' && t !== 'implicit' && t !== 'explicit')
          throw new ScenarioError(`unknown transition ${t}`);
        transition = t;
      } else if (arg.vals.length === 0) {
        tokens.push(arg.key);
      } else {
        throw new ScenarioError(`propose-conf-change: unknown argument ${arg.key}`);
      }
    }
    tokens.push(...d.input.split(/\s+/).filter((s) => s !== ''));
    const cc: ConfChange = { transition, changes: parseConfChanges(tokens), context: new Uint8Array() };
    // Round-trip through the codec the core uses, so a lossy encoding shows up here first.
    this.node(id).raw.proposeConfChange(decodeConfChange(encodeConfChange(cc)));
  }

  private handleReadIndex(d: Directive): void {
    const id = firstInt(d);
    if (d.args.length !== 2 || d.args[1].vals.length > 0)
      throw new ScenarioError(`usage: read-index <id> <context>`);
    this.node(id).raw.readIndex(textEncoder.encode(d.args[1].key));
  }

  private handleTransferLeadership(d: Directive): void {
    const from = requiredInt(d, 'from');
    const to = requiredInt(d, 'to');
    this.node(from).raw.transferLeader(to);
  }

  private handleReportUnreachable(d: Directive): void {
    const ids = nodeIds(d);
    if (ids.length !== 2) throw new ScenarioError(`usage: report-unreachable <on> <unreachable>`);
    this.node(ids[0]).raw.reportUnreachable(ids[1]);
  }

  private handleReportSnapshot(d: Directive): void {
    const ids = nodeIds(d);
    const status = optString(d, 'status') ?? 'finish';
    if (ids.length !== 2 || (status !== 'finish' && status !== 'failure')) {
      throw new ScenarioError(`usage: report-snapshot <leader> <follower> [status=finish|failure]`);
    }
    this.node(ids[0]).raw.reportSnapshot(ids[1], status);
  }

  // ---- storage

  /** Records a snapshot at the applied index in MemoryStorage (what a real application does before compacting). */
  private handleSnapshot(d: Directive): void {
    const n = this.node(firstInt(d));
    const snap = n.storage.createSnapshot(
      n.applied,
      structuredClone(n.confState),
      encodeState(n.appliedData),
    );
    this.print(`snapshot ${describeSnapshot(snap)}`);
  }

  private handleCompact(d: Directive): void {
    const [id, index] = bareInts(d);
    if (id === undefined || index === undefined) throw new ScenarioError(`usage: compact <id> <index>`);
    const n = this.node(id);
    if (index > n.applied) throw new ScenarioError(`compact ${index}: beyond applied index ${n.applied}`);
    n.storage.compact(index);
    this.printRaftLog(n);
  }

  private printRaftLog(n: HarnessNode): void {
    const first = n.storage.firstIndex();
    const last = n.storage.lastIndex();
    if (last < first) {
      this.print(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    this.print(
      describeEntries(n.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER), decodeConfChange).join(
        '\n',
      ),
    );
  }

  // ---- state

  private handleRaftState(): void {
    for (const n of this.nodes) {
      const st = n.raw.status();
      const cs = st.confState;
      const voter = cs.voters.includes(n.id) || cs.votersOutgoing.includes(n.id);
      this.print(
        `${n.id}: ${ROLE_NAMES[st.softState.role]} (${voter ? 'Voter' : 'Non-Voter'}) ` +
          `Term:${st.hardState.term} Lead:${st.softState.leader}`,
      );
    }
  }

  private handleStatus(d: Directive): void {
    for (const id of nodeIds(d)) {
      const st = this.node(id).raw.status();
      const transferee = st.leadTransferee !== 0 ? ` LeadTransferee:${st.leadTransferee}` : '';
      this.print(
        `${id}: ${ROLE_NAMES[st.softState.role]} Term:${st.hardState.term} Vote:${st.hardState.vote} ` +
          `Commit:${st.hardState.commit} Applied:${st.applied} LastIndex:${st.lastIndex} Lead:${st.softState.leader}${transferee}`,
      );
      this.print(`Config: ${describeConfig(st.confState)}`);
      if (!st.progress) continue;
      const peers = [...st.progress.keys()].sort((a, b) => a - b);
      for (const peer of peers) {
        const pr = st.progress.get(peer)!;
        let line = `${peer}: State${pr.state[0].toUpperCase()}${pr.state.slice(1)} match=${pr.match} next=${pr.next}`;
        if (pr.isLearner) line += ' learner';
        if (pr.pendingSnapshot > 0) line += ` pendingSnap=${pr.pendingSnapshot}`;
        if (!pr.recentActive) line += ' inactive';
        if (pr.inflight > 0) line += ` inflight=${pr.inflight}`;
        this.print(line);
      }
    }
  }
}

/** The node's state machine image at its applied index, with the configuration as of that index. */
function currentSnapshot(n: HarnessNode): Snapshot {
  const index = n.applied;
  return {
    metadata: { index, term: n.storage.term(index), confState: structuredClone(n.confState) },
    data: encodeState(n.appliedData),
  };
}

/** etcd's add-nodes bootstrap: a snapshot at `index`, term 1, carrying the initial configuration. */
function bootstrapStorage(confState: ConfState, index: number): ScenarioStorage {
  if (index === 0) return new ScenarioStorage(confState);
  const storage = new ScenarioStorage();
  storage.applySnapshot({ metadata: { index, term: 1, confState }, data: encodeState([]) });
  return storage;
}

function configOverrides(d: Directive): Partial<RaftConfig> {
  const readOnly = optString(d, 'readonly') ?? optString(d, 'read-only') ?? 'safe';
  const readOnlyOption = { safe: 'safe', lease: 'leaseBased', 'lease-based': 'leaseBased' }[readOnly];
  if (readOnlyOption !== 'safe' && readOnlyOption !== 'leaseBased')
    throw new ScenarioError(`readonly=safe|lease, not ${readOnly}`);
  const overrides: Partial<RaftConfig> = {
    electionTicks: optInt(d, 'election') ?? DEFAULT_ELECTION_TICKS,
    heartbeatTicks: optInt(d, 'heartbeat') ?? DEFAULT_HEARTBEAT_TICKS,
    checkQuorum: optBool(d, 'checkquorum') ?? false,
    preVote: optBool(d, 'prevote') ?? false,
    readOnlyOption,
    disableProposalForwarding: !(optBool(d, 'forwarding') ?? true),
  };
  const inflight = optInt(d, 'inflight');
  if (inflight !== undefined) overrides.maxInflightMsgs = inflight;
  const maxSize = optInt(d, 'max-size-per-msg');
  if (maxSize !== undefined) overrides.maxSizePerMsg = maxSize;
  const maxUncommitted = optInt(d, 'max-uncommitted-size');
  if (maxUncommitted !== undefined) overrides.maxUncommittedEntriesSize = maxUncommitted;
  const known = new Set([
    'jitter',
    'voters',
    'learners',
    'index',
    'readonly',
    'read-only',
    'election',
    'heartbeat',
    'checkquorum',
    'prevote',
    'forwarding',
    'inflight',
    'max-size-per-msg',
    'max-uncommitted-size',
  ]);
  for (const arg of d.args.slice(1))
    if (!known.has(arg.key)) throw new ScenarioError(`add-nodes: unknown argument ${arg.key}`);
  return overrides;
}

/** etcd's ConfChangesFromString tokens: vN add voter, lN add learner, rN remove (uN update is not in our ConfChangeType). */
export function parseConfChanges(tokens: string[]): ConfChangeSingle[] {
  return tokens.map((tok) => {
    const match = /^([vlru])(\d+)$/.exec(tok);
    if (!match) throw new ScenarioError(`unknown conf change token ${JSON.stringify(tok)} (want vN, lN, rN)`);
    const nodeId = parseId(match[2]);
    switch (match[1]) {
      case 'v':
        return { type: 'addNode', nodeId };
      case 'l':
        return { type: 'addLearner', nodeId };
      case 'r':
        return { type: 'removeNode', nodeId };
      default:
        throw new ScenarioError(`${tok}: update (uN) is not supported, ConfChangeType has no updateNode`);
    }
  });
}

// ---- argument helpers

function linkKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}

export function parseId(text: string): NodeId {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0)
    throw new ScenarioError(`not a node id: ${JSON.stringify(text)}`);
  return n;
}

function parseUint(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new ScenarioError(`${what}: not a non-negative integer: ${JSON.stringify(text)}`);
  return n;
}

function firstInt(d: Directive): number {
  const first = d.args[0];
  if (!first || first.vals.length > 0) throw new ScenarioError(`${d.cmd}: first argument must be a number`);
  return parseUint(first.key, d.cmd);
}

function bareInts(d: Directive): number[] {
  return d.args.filter((a) => a.vals.length === 0).map((a) => parseUint(a.key, d.cmd));
}

/** The bare numeric arguments (node ids) of a command, as etcd's nodeIdxs. */
function nodeIds(d: Directive): NodeId[] {
  return d.args.filter((a) => a.vals.length === 0).map((a) => parseId(a.key));
}

function find(d: Directive, key: string): CmdArg | undefined {
  return d.args.find((a) => a.key === key && a.vals.length > 0) ?? d.args.find((a) => a.key === key);
}

function single(arg: CmdArg): string {
  if (arg.vals.length !== 1) throw new ScenarioError(`${arg.key} takes exactly one value`);
  return arg.vals[0];
}

function optString(d: Directive, key: string): string | undefined {
  const arg = find(d, key);
  return arg ? single(arg) : undefined;
}

function optInt(d: Directive, key: string): number | undefined {
  const s = optString(d, key);
  return s === undefined ? undefined : parseUint(s, key);
}

function requiredInt(d: Directive, key: string): number {
  const n = optInt(d, key);
  if (n === undefined) throw new ScenarioError(`${d.cmd}: missing ${key}=`);
  return n;
}

function optBool(d: Directive, key: string): boolean | undefined {
  const s = optString(d, key);
  return s === undefined ? undefined : parseBool(s, key);
}

function parseBool(s: string, key: string): boolean {
  if (s !== 'true' && s !== 'false') throw new ScenarioError(`${key}=true|false, not ${s}`);
  return s === 'true';
}

function intVals(d: Directive, key: string): NodeId[] {
  const arg = d.args.find((a) => a.key === key);
  return arg ? arg.vals.map(parseId) : [];
}
