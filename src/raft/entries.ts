// Entry size accounting and copies of the plain-data types, shared by the log, storage and flow control.
import { assert } from '../util/index.ts';
import type { ConfState, Entry, HardState, Snapshot } from './types.ts';

/** Fixed per-entry overhead (term, index, type, framing) so empty entries still cost bytes. */
export const ENTRY_OVERHEAD_BYTES = 24;

/** Bytes an entry counts for in message, inflight and Ready size limits. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** Bytes of application payload (etcd's payloadSize), used by maxUncommittedEntriesSize. */
export function payloadSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.data.byteLength;
  return total;
}

export function entriesSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entrySizeBytes(entry);
  return total;
}

/** The longest prefix of `entries` within `maxBytes`, but always at least one entry (etcd's limitSize). */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length <= 1) return entries;
  let size = entrySizeBytes(entries[0]);
  let count = 1;
  while (count < entries.length) {
    size += entrySizeBytes(entries[count]);
    if (size > maxBytes) break;
    count++;
  }
  assert(count >= 1 && count <= entries.length);
  return count === entries.length ? entries : entries.slice(0, count);
}

/** Asserts that `entries` have consecutive indexes. */
export function assertContiguous(entries: readonly Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i].index === entries[i - 1].index + 1, () => `entries not contiguous at ${entries[i].index}`);
  }
}

export function emptyConfState(): ConfState {
  return { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

export function copyConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    votersOutgoing: [...cs.votersOutgoing],
    learners: [...cs.learners],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}

export function copyHardState(hs: HardState): HardState {
  return { term: hs.term, vote: hs.vote, commit: hs.commit };
}

export function copySnapshot(snap: Snapshot): Snapshot {
  const { index, term, confState } = snap.metadata;
  return { metadata: { index, term, confState: copyConfState(confState) }, data: snap.data };
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0 && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
