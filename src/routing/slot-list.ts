// An unordered list with O(1) removal: each entry remembers its index, removal swaps the last
// entry into the hole. Routing iterates `entries` by index, which allocates nothing (a Set's
// iterator would), and a queue with 100k bindings can be unbound without O(n) splices.
import assert from 'node:assert/strict';

export interface Slot<T> {
  readonly value: T;
  index: number;
}

export class SlotList<T> {
  readonly entries: Slot<T>[] = [];

  get length(): number {
    return this.entries.length;
  }

  add(value: T): Slot<T> {
    const slot: Slot<T> = { value, index: this.entries.length };
    this.entries.push(slot);
    return slot;
  }

  remove(slot: Slot<T>): void {
    const entries = this.entries;
    assert.equal(entries[slot.index], slot, 'slot does not belong to this list');
    const last = entries.pop();
    if (last !== undefined && last !== slot) {
      entries[slot.index] = last;
      last.index = slot.index;
    }
    slot.index = -1;
  }
}
