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

export class DeadlineSlots {
  private readonly slots = new Map<number, Set<Expiring>>();
  private count = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly slotMs = SLOT_MS,
  ) {}

  /** Calls `item.expire()` once `now()` is past `deadlineMs`; returns the slot to remove it from. */
  add(item: Expiring, deadlineMs: number): number {
    const slot = Math.ceil(deadlineMs / this.slotMs);
    let items = this.slots.get(slot);
    if (items === undefined) {
      items = new Set();
      this.slots.set(slot, items);
    }
    items.add(item);
    this.count++;
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.slotMs);
      this.timer.unref();
    }
    return slot;
  }

  remove(item: Expiring, slot: number): void {
    const items = this.slots.get(slot);
    if (items === undefined || !items.delete(item)) return;
    this.count--;
    if (items.size === 0) this.slots.delete(slot);
    // The timer stays until a tick finds nothing: calls come and go faster than a slot.
  }

  get size(): number {
    return this.count;
  }

  private tick(): void {
    const due = this.now() / this.slotMs;
    for (const [slot, items] of this.slots) {
      if (slot > due) continue;
      this.slots.delete(slot);
      this.count -= items.size;
      for (const item of items) item.expire();
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
