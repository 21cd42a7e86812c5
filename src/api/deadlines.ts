// Call deadlines far in the future, checked together. Clients set a deadline on nearly every call
// (the bench and etcd clients: 5-10 s) that nearly never passes; a timer per call cost ~3% of a
// node's CPU on gets (timer-list insert and unenroll per call). A deadline at least
// `COARSE_AFTER_MS` away instead joins a slot of `SLOT_MS`, and one timer serves every slot: it
// fires at most one slot late, never early. Shorter deadlines keep a precise timer of their own.

/** Deadlines at least this far away go to a slot. */
export const COARSE_AFTER_MS = 1_000;
/** Width of a slot: how late a coarse deadline may fire. */
export const SLOT_MS = 50;

export interface Expiring {
  /** The deadline passed. */
  expire(): void;
}

/**
 * An item's place in a slot. The slots' sets see every call come and go, and a hash table a Set
 * rehashes away keeps its entries until a full GC; holding the call through a handle that removal
 * empties, such a table pins nothing (src/util/churn-map.ts says more).
 */
export interface SlotEntry {
  readonly slot: number;
  item: Expiring | null;
}

export class DeadlineSlots {
  private readonly slots = new Map<number, Set<SlotEntry>>();
  private count = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly slotMs = SLOT_MS,
  ) {}

  /** Calls `item.expire()` once `now()` is past `deadlineMs`; returns the entry to remove it by. */
  add(item: Expiring, deadlineMs: number): SlotEntry {
    const slot = Math.ceil(deadlineMs / this.slotMs);
    let entries = this.slots.get(slot);
    if (entries === undefined) {
      entries = new Set();
      this.slots.set(slot, entries);
    }
    const entry: SlotEntry = { slot, item };
    entries.add(entry);
    this.count++;
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.slotMs);
      this.timer.unref();
    }
    return entry;
  }

  remove(entry: SlotEntry): void {
    entry.item = null;
    const entries = this.slots.get(entry.slot);
    if (entries === undefined || !entries.delete(entry)) return;
    this.count--;
    if (entries.size === 0) this.slots.delete(entry.slot);
    // The timer stays until a tick finds nothing: calls come and go faster than a slot.
  }

  get size(): number {
    return this.count;
  }

  private tick(): void {
    const due = this.now() / this.slotMs;
    for (const [slot, entries] of this.slots) {
      if (slot > due) continue;
      this.slots.delete(slot);
      this.count -= entries.size;
      for (const entry of entries) {
        const item = entry.item;
        entry.item = null;
        item?.expire();
      }
    }
    if (this.count === 0) this.stop();
  }

  private stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }
}

/** The slots every call of this process shares. */
export const callDeadlines = new DeadlineSlots();
