// A small randomized soak: lossy, duplicating, reordering network, partitions, crashes that keep
// only persisted state, compaction, transfers, membership changes (simple and joint).
// Checks election safety and state machine safety. Deeper local runs:
//   SOAK_SEEDS=50 SOAK_STEPS=4000 node --import tsx --test test/raft/random.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  seededRng,
  type ConfChange,
  type ConfChangeSingle,
  type Entry,
  type Message,
  type RaftConfig,
  type Rng,
} from '../../src/raft/index.ts';
import { Network, confState, enc, snapshotAndCompact, type TestNode } from './helpers.ts';

interface Applied {
  term: number;
  data: string;
}

const ALL_IDS = [1, 2, 3, 4, 5, 6];

class Soak {
  readonly rng: Rng;
  readonly net: Network;
  readonly leaderOfTerm = new Map<number, number>();
  readonly appliedAt = new Map<number, Applied>();
  readonly down = new Set<number>();
  inFlight: Message[] = [];
  proposals = 0;
  confChanges = 0;
  /** Read context -> highest index applied anywhere when the read was issued. */
  readsIssued = new Map<string, number>();
  readsServed = 0;

  constructor(
    readonly seed: number,
    fault: RaftConfig['testingFault'],
  ) {
    this.rng = seededRng(seed);
    // 6 starts outside the group (a future joiner with the bootstrap conf state).
    // Odd seeds run without CheckQuorum: stale leaders linger, which stresses ReadIndex and terms.
    const config = { maxInflightMsgs: 4, maxSizePerMsg: 200, checkQuorum: seed % 2 === 0, testingFault: fault };
    this.net = new Network(ALL_IDS, { seed, initial: confState([1, 2, 3, 4, 5]), config });
  }

  chance(p: number): boolean {
    return this.rng.nextInt(1000) < p * 1000;
  }

  pick<T>(items: T[]): T {
    return items[this.rng.nextInt(items.length)];
  }

  checkApplied(id: number, entries: Entry[]): void {
    for (const e of entries) {
      const seen = this.appliedAt.get(e.index);
      const mine = { term: e.term, data: `${e.type}:${new TextDecoder().decode(e.data)}` };
      if (seen === undefined) this.appliedAt.set(e.index, mine);
      else assert.deepEqual(mine, seen, `seed ${this.seed}: node ${id} applied a different entry at ${e.index}`);
    }
  }

  processReadies(): void {
    for (const id of ALL_IDS) {
      if (this.down.has(id)) continue;
      const node = this.net.node(id);
      for (let i = 0; i < 10 && node.raw.hasReady(); i++) this.handleReady(node);
      const s = node.raw.status();
      if (s.softState.role === 'leader') {
        const prev = this.leaderOfTerm.get(s.hardState.term);
        assert.ok(prev === undefined || prev === id, `seed ${this.seed}: two leaders in term ${s.hardState.term}`);
        this.leaderOfTerm.set(s.hardState.term, id);
      }
    }
  }

  handleReady(node: TestNode): void {
    const rd = node.raw.ready();
    if (rd.snapshot) {
      node.storage.applySnapshot(rd.snapshot);
      node.appliedIndex = rd.snapshot.metadata.index;
    }
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    this.inFlight.push(...rd.messages);
    this.checkApplied(node.id, rd.committedEntries);
    for (const rs of rd.readStates) this.checkRead(rs.index, new TextDecoder().decode(rs.context));
    for (const entry of rd.committedEntries) {
      node.appliedIndex = entry.index;
      if (entry.type === 'conf') node.storage.setConfState(node.raw.applyConfChange(decodeConfChange(entry.data)));
    }
    node.raw.advance();
  }

  /** Linearizable read: the read index covers every entry applied anywhere before the read began. */
  checkRead(index: number, context: string): void {
    const floor = this.readsIssued.get(context);
    if (floor === undefined) return; // a node may see a response meant for a read it forwarded
    assert.ok(index >= floor, `seed ${this.seed}: read ${context} at ${index} misses applied index ${floor}`);
    this.readsServed++;
  }

  issueRead(): void {
    const id = this.pick(ALL_IDS);
    if (this.down.has(id)) return;
    const context = `r${this.readsIssued.size}`;
    let floor = 0;
    for (const index of this.appliedAt.keys()) floor = Math.max(floor, index);
    this.readsIssued.set(context, floor);
    this.tryPropose(id, (raw) => raw.readIndex(enc(context)));
  }

  deliverSome(): void {
    const keep: Message[] = [];
    for (const m of this.inFlight) {
      if (this.chance(0.05)) continue; // lost
      if (this.chance(0.3)) {
        keep.push(m); // delayed: reordered behind later messages
        continue;
      }
      if (this.down.has(m.to) || this.net.drop(m)) continue;
      this.net.node(m.to).raw.step(m);
      if (this.chance(0.03)) this.net.node(m.to).raw.step(m); // duplicated
    }
    this.inFlight = keep;
  }

  leader(): number | undefined {
    return ALL_IDS.find((id) => !this.down.has(id) && this.net.role(id) === 'leader');
  }

  tryPropose(leader: number, action: (node: RawNode) => void): void {
    try {
      action(this.net.node(leader).raw);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  randomConfChange(leader: number): ConfChange {
    const cs = this.net.node(leader).raw.status().confState;
    if (cs.votersOutgoing.length > 0) return { transition: 'auto', changes: [], context: new Uint8Array() };
    const outside = ALL_IDS.filter((id) => !cs.voters.includes(id) && !cs.learners.includes(id));
    const single = (): ConfChangeSingle => {
      const roll = this.rng.nextInt(3);
      if (roll === 0 && outside.length > 0) return { type: 'addLearner', nodeId: this.pick(outside) };
      if (roll === 1 && cs.voters.length > 3) return { type: 'removeNode', nodeId: this.pick(cs.voters) };
      return { type: 'addNode', nodeId: this.pick([...outside, ...cs.learners, ...cs.voters]) };
    };
    const count = this.chance(0.5) ? 1 : 2;
    const changes = Array.from({ length: count }, single);
    return { transition: this.chance(0.3) ? 'explicit' : 'auto', changes, context: new Uint8Array() };
  }

  restart(id: number): void {
    this.down.delete(id);
    const node = this.net.node(id);
    // Restart from persisted state only; the test state machine is durable up to appliedIndex.
    const raw = new RawNode({ ...node.config, applied: node.appliedIndex }, node.storage);
    this.net.nodes.set(id, { ...node, raw });
  }

  step(): void {
    this.processReadies();
    this.deliverSome();
    for (const id of ALL_IDS) if (!this.down.has(id)) this.net.node(id).raw.tick();
    const leader = this.leader();
    if (leader !== undefined && this.chance(0.3)) this.tryPropose(leader, (raw) => raw.propose(enc(`p${this.proposals++}`)));
    if (leader !== undefined && this.chance(0.01)) {
      this.confChanges++;
      this.tryPropose(leader, (raw) => raw.proposeConfChange(this.randomConfChange(leader)));
    }
    if (leader !== undefined && this.chance(0.005)) this.tryPropose(leader, (raw) => raw.proposeConfChange({ transition: 'auto', changes: [], context: new Uint8Array() }));
    if (this.chance(0.1)) this.issueRead();
    if (this.chance(0.02)) {
      const side = ALL_IDS.filter(() => this.chance(0.5));
      this.net.partition(side, ALL_IDS.filter((id) => !side.includes(id)));
    }
    if (this.chance(0.02)) this.net.heal();
    if (this.chance(0.01) && this.down.size < 2) this.down.add(this.pick(ALL_IDS));
    if (this.down.size > 0 && this.chance(0.03)) this.restart([...this.down][0]);
    if (leader !== undefined && this.chance(0.01)) this.net.node(leader).raw.transferLeader(this.pick(ALL_IDS));
    if (this.chance(0.01)) {
      const node = this.net.node(this.pick(ALL_IDS));
      if (!this.down.has(node.id) && node.appliedIndex > node.storage.firstIndex()) snapshotAndCompact(node);
    }
  }
}

function soak(seed: number, steps: number, fault?: RaftConfig['testingFault']): { commits: number; leaders: number; reads: number } {
  const run = new Soak(seed, fault);
  for (let i = 0; i < steps; i++) run.step();
  return { commits: run.appliedAt.size, leaders: run.leaderOfTerm.size, reads: run.readsServed };
}

test('randomized soak keeps election safety and state machine safety', () => {
  const seeds = Number(process.env.SOAK_SEEDS ?? 6);
  const steps = Number(process.env.SOAK_STEPS ?? 1500);
  for (let seed = 1; seed <= seeds; seed++) {
    const { commits, leaders, reads } = soak(seed, steps);
    assert.ok(commits > 20, `seed ${seed}: progress (${commits} commits)`);
    assert.ok(reads > 5, `seed ${seed}: reads served (${reads})`);
    assert.ok(leaders >= 1);
  }
});

test('the soak catches the testing faults that break safety quickly', () => {
  for (const fault of ['grantEveryVote', 'skipAppendConsistencyCheck'] as const) {
    assert.throws(() => {
      for (let seed = 1; seed <= 20; seed++) soak(seed, 3000, fault);
    }, /applied a different entry|two leaders|conflicts with committed|AssertionError/, fault);
  }
});
