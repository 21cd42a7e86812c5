// The small per-group records kept in the `state` database, and their checks on the way back in:
// whatever comes off disk is `unknown` until it is proven to have the right shape.
import { copyConfState } from '../raft/index.ts';
import type { ConfState, HardState } from '../raft/index.ts';

export { copyConfState };
import { StorageCorruptionError } from './errors.ts';

export type RecordName = 'group' | 'hardState' | 'confState' | 'offset' | 'snapshot';

/** The log's dummy entry (etcd's ents[0]): the index and term just before the first entry. */
export interface LogOffset {
  index: number;
  term: number;
}

/** Snapshot metadata plus where its data lives: `chunkCount` chunks under [group, index, n]. */
export interface SnapshotRecord {
  index: number;
  term: number;
  confState: ConfState;
  byteLength: number;
  chunkCount: number;
  /** Chunks are encryption envelopes (encryption.ts); absent in records written without a key. */
  sealed: boolean;
}

export function emptyConfState(): ConfState {
  return { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

export function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isIdList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isIndex);
}

function field(record: unknown, name: string): unknown {
  return typeof record === 'object' && record !== null ? (record as Record<string, unknown>)[name] : undefined;
}

function corrupt(what: string, groupId: number, value: unknown): StorageCorruptionError {
  return new StorageCorruptionError(`group ${groupId}: bad ${what} record ${JSON.stringify(value)}`);
}

export function isHardState(value: unknown): value is HardState {
  return isIndex(field(value, 'term')) && isIndex(field(value, 'vote')) && isIndex(field(value, 'commit'));
}

export function isConfState(value: unknown): value is ConfState {
  return (
    isIdList(field(value, 'voters')) &&
    isIdList(field(value, 'votersOutgoing')) &&
    isIdList(field(value, 'learners')) &&
    isIdList(field(value, 'learnersNext')) &&
    typeof field(value, 'autoLeave') === 'boolean'
  );
}

export function readHardState(groupId: number, value: unknown): HardState {
  if (value === undefined) return { term: 0, vote: 0, commit: 0 };
  if (!isHardState(value)) throw corrupt('hardState', groupId, value);
  return { term: value.term, vote: value.vote, commit: value.commit };
}

export function readConfState(groupId: number, value: unknown): ConfState {
  if (value === undefined) return emptyConfState();
  if (!isConfState(value)) throw corrupt('confState', groupId, value);
  return copyConfState(value);
}

export function readOffset(groupId: number, value: unknown): LogOffset {
  if (value === undefined) return { index: 0, term: 0 };
  const index = field(value, 'index');
  const term = field(value, 'term');
  if (!isIndex(index) || !isIndex(term)) throw corrupt('offset', groupId, value);
  return { index, term };
}

export function readSnapshotRecord(groupId: number, value: unknown): SnapshotRecord {
  if (value === undefined) return { index: 0, term: 0, confState: emptyConfState(), byteLength: 0, chunkCount: 0, sealed: false };
  const [index, term, byteLength, chunkCount] = ['index', 'term', 'byteLength', 'chunkCount'].map((name) => field(value, name));
  const confState = field(value, 'confState');
  const sealed = field(value, 'sealed') ?? false;
  if (!isIndex(index) || !isIndex(term) || !isIndex(byteLength) || !isIndex(chunkCount) || !isConfState(confState) || typeof sealed !== 'boolean') {
    throw corrupt('snapshot', groupId, value);
  }
  return { index, term, confState: copyConfState(confState), byteLength, chunkCount, sealed };
}
