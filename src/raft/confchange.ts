// Membership changes like etcd's confchange package: simple changes, entering and leaving joint
// consensus, restoring a configuration from a ConfState, and the ConfChange wire encoding.
import { assert } from '../util/index.ts';
import { ConfChangeError } from './errors.ts';
import { Inflights } from './inflights.ts';
import { Progress } from './progress.ts';
import { cloneTrackerConfig, type ProgressTracker, type TrackerConfig } from './tracker.ts';
import type { ConfChange, ConfChangeSingle, ConfChangeType, ConfState, NodeId } from './types.ts';

/** Max single changes in one ConfChange (bounds the work of one conf entry). */
export const MAX_CONF_CHANGES = 64;

export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
}

/** Empty `changes` leaves the joint configuration (etcd's LeaveJoint). */
export function isLeaveJoint(change: ConfChange): boolean {
  return change.changes.length === 0;
}

/** Whether `change` enters a joint configuration, and with which autoLeave (etcd's EnterJoint). */
export function enterJointOf(change: ConfChange): { autoLeave: boolean } | null {
  if (isLeaveJoint(change)) return null;
  if (change.transition === 'auto' && change.changes.length === 1) return null;
  return { autoLeave: change.transition !== 'explicit' };
}

/** Computes a new configuration from the tracker's current one; never mutates the tracker. */
export class Changer {
  private readonly tracker: ProgressTracker;
  private readonly lastIndex: number;

  constructor(tracker: ProgressTracker, lastIndex: number) {
    this.tracker = tracker;
    this.lastIndex = lastIndex;
  }

  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ChangeResult {
    const result = this.checkAndCopy();
    const { voters } = result.config;
    if (voters.outgoing.size > 0) throw new ConfChangeError('config is already joint');
    if (voters.incoming.size === 0) throw new ConfChangeError("can't make a zero-voter config joint");
    voters.outgoing = new Set(voters.incoming);
    this.apply(result, changes);
    result.config.autoLeave = autoLeave;
    return checkAndReturn(result);
  }

  leaveJoint(): ChangeResult {
    const result = this.checkAndCopy();
    const { config, progress } = result;
    if (config.voters.outgoing.size === 0) throw new ConfChangeError("can't leave a non-joint config");
    for (const id of config.learnersNext) {
      config.learners.add(id);
      const pr = progress.get(id);
      assert(pr !== undefined, () => `learnersNext ${id} has no progress`);
      pr.isLearner = true;
    }
    config.learnersNext = new Set();
    for (const id of config.voters.outgoing) {
      if (!config.voters.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.voters.outgoing = new Set();
    config.autoLeave = false;
    return checkAndReturn(result);
  }

  /** One voter added or removed (any number of learner changes) without a joint configuration. */
  simple(changes: readonly ConfChangeSingle[]): ChangeResult {
    const result = this.checkAndCopy();
    if (result.config.voters.outgoing.size > 0) {
      throw new ConfChangeError("can't apply simple config change in joint config");
    }
    const before = new Set(result.config.voters.incoming);
    this.apply(result, changes);
    const after = result.config.voters.incoming;
    let changed = 0;
    for (const id of before) if (!after.has(id)) changed++;
    for (const id of after) if (!before.has(id)) changed++;
    if (changed > 1) throw new ConfChangeError('more than one voter changed without entering joint config');
    return checkAndReturn(result);
  }

  private checkAndCopy(): ChangeResult {
    this.tracker.assertInvariants();
    const progress = new Map<NodeId, Progress>();
    for (const [id, pr] of this.tracker.progress) progress.set(id, cloneProgress(pr));
    return { config: cloneTrackerConfig(this.tracker.config), progress };
  }

  private apply(result: ChangeResult, changes: readonly ConfChangeSingle[]): void {
    if (changes.length > MAX_CONF_CHANGES) throw new ConfChangeError(`more than ${MAX_CONF_CHANGES} changes`);
    for (const change of changes) {
      if (change.nodeId === 0) continue; // etcd ignores changes for node 0
      switch (change.type) {
        case 'addNode':
          this.makeVoter(result, change.nodeId);
          break;
        case 'addLearner':
          this.makeLearner(result, change.nodeId);
          break;
        case 'removeNode':
          remove(result, change.nodeId);
          break;
      }
    }
    if (result.config.voters.incoming.size === 0) throw new ConfChangeError('removed all voters');
  }

  private makeVoter(result: ChangeResult, id: NodeId): void {
    const pr = result.progress.get(id);
    if (pr === undefined) {
      this.initProgress(result, id, false);
      return;
    }
    pr.isLearner = false;
    result.config.learners.delete(id);
    result.config.learnersNext.delete(id);
    result.config.voters.incoming.add(id);
  }

  private makeLearner(result: ChangeResult, id: NodeId): void {
    const pr = result.progress.get(id);
    if (pr === undefined) {
      this.initProgress(result, id, true);
      return;
    }
    if (pr.isLearner) return;
    remove(result, id);
    result.progress.set(id, pr); // keep the progress of a demoted voter
    if (result.config.voters.outgoing.has(id)) {
      result.config.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      result.config.learners.add(id);
    }
  }

  private initProgress(result: ChangeResult, id: NodeId, isLearner: boolean): void {
    if (isLearner) result.config.learners.add(id);
    else result.config.voters.incoming.add(id);
    // Probe from the last index; a new member is marked active so CheckQuorum does not count it out at once.
    const next = Math.max(1, this.lastIndex);
    const pr = new Progress(0, next, new Inflights(this.tracker.maxInflightMsgs, this.tracker.maxInflightBytes), isLearner);
    pr.recentActive = true;
    result.progress.set(id, pr);
  }
}

function remove(result: ChangeResult, id: NodeId): void {
  if (!result.progress.has(id)) return;
  result.config.voters.incoming.delete(id);
  result.config.learners.delete(id);
  result.config.learnersNext.delete(id);
  // A voter of the outgoing config keeps its progress until the joint config is left.
  if (!result.config.voters.outgoing.has(id)) result.progress.delete(id);
}

function cloneProgress(pr: Progress): Progress {
  const copy = new Progress(pr.match, pr.next, pr.inflights, pr.isLearner);
  copy.state = pr.state;
  copy.pendingSnapshot = pr.pendingSnapshot;
  copy.recentActive = pr.recentActive;
  copy.msgAppFlowPaused = pr.msgAppFlowPaused;
  return copy;
}

function checkAndReturn(result: ChangeResult): ChangeResult {
  const { config, progress } = result;
  for (const id of [...config.voters.incoming, ...config.voters.outgoing, ...config.learners, ...config.learnersNext]) {
    assert(progress.has(id), () => `no progress for ${id}`);
  }
  for (const id of config.learners) {
    assert(!config.voters.incoming.has(id) && !config.voters.outgoing.has(id), () => `${id} is both learner and voter`);
  }
  return result;
}

/**
 * Rebuilds a configuration from a ConfState (etcd's confchange.Restore): first the outgoing config
 * by simple adds, then the incoming one by entering a joint config (if there is an outgoing config).
 */
export function restoreConfState(tracker: ProgressTracker, lastIndex: number, cs: ConfState): ChangeResult {
  const outgoingAdds: ConfChangeSingle[] = cs.votersOutgoing.map((nodeId) => ({ type: 'addNode', nodeId }));
  const incoming: ConfChangeSingle[] = [
    ...cs.votersOutgoing.map((nodeId): ConfChangeSingle => ({ type: 'removeNode', nodeId })),
    ...cs.voters.map((nodeId): ConfChangeSingle => ({ type: 'addNode', nodeId })),
    ...cs.learners.map((nodeId): ConfChangeSingle => ({ type: 'addLearner', nodeId })),
    ...cs.learnersNext.map((nodeId): ConfChangeSingle => ({ type: 'addLearner', nodeId })),
  ];
  const install = (result: ChangeResult): void => {
    tracker.config = result.config;
    tracker.progress = result.progress;
  };
  if (outgoingAdds.length === 0) {
    for (const change of incoming) {
      if (change.type === 'removeNode') continue;
      install(restoreSimple(tracker, lastIndex, change));
    }
  } else {
    for (const change of outgoingAdds) install(restoreSimple(tracker, lastIndex, change));
    install(new Changer(tracker, lastIndex).enterJoint(cs.autoLeave, incoming));
  }
  tracker.assertInvariants();
  return { config: tracker.config, progress: tracker.progress };
}

/** One change applied with `simple`, except that an empty voter set may gain learners first. */
function restoreSimple(tracker: ProgressTracker, lastIndex: number, change: ConfChangeSingle): ChangeResult {
  const changer = new Changer(tracker, lastIndex);
  if (change.type === 'addLearner' && tracker.config.voters.incoming.size === 0) {
    throw new ConfChangeError('conf state has learners but no voters');
  }
  return changer.simple([change]);
}

// ---- Wire encoding: deterministic JSON, so every replica decodes the same change. ----

const CHANGE_TYPES: readonly ConfChangeType[] = ['addNode', 'removeNode', 'addLearner'];
const TRANSITIONS: readonly ConfChange['transition'][] = ['auto', 'implicit', 'explicit'];

export function encodeConfChange(change: ConfChange): Uint8Array {
  const wire = {
    transition: change.transition,
    changes: change.changes.map((c) => ({ type: c.type, nodeId: c.nodeId })),
    context: toHex(change.context),
  };
  return new TextEncoder().encode(JSON.stringify(wire));
}

/**
 * Inverse of encodeConfChange. Empty data is the leave-joint change (as in etcd, where nil data
 * unmarshals into an empty ConfChangeV2); the leader's automatic leave uses it. Throws ConfChangeError.
 */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length === 0) return { transition: 'auto', changes: [], context: new Uint8Array(0) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new ConfChangeError('undecodable conf change');
  }
  if (typeof parsed !== 'object' || parsed === null) throw new ConfChangeError('conf change is not an object');
  const record = parsed as Record<string, unknown>;
  const transition = TRANSITIONS.find((t) => t === record.transition);
  if (transition === undefined) throw new ConfChangeError('bad transition');
  if (!Array.isArray(record.changes) || record.changes.length > MAX_CONF_CHANGES) throw new ConfChangeError('bad changes');
  if (typeof record.context !== 'string') throw new ConfChangeError('bad context');
  const changes = record.changes.map((raw: unknown): ConfChangeSingle => {
    const item = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const type = CHANGE_TYPES.find((t) => t === item.type);
    const nodeId = item.nodeId;
    if (type === undefined || typeof nodeId !== 'number' || !Number.isSafeInteger(nodeId) || nodeId < 0) {
      throw new ConfChangeError('bad single change');
    }
    return { type, nodeId };
  });
  return { transition, changes, context: fromHex(record.context) };
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) throw new ConfChangeError('bad hex context');
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}
