// direct: a binding matches when its key equals the routing key exactly (arguments ignored).
import assert from 'node:assert/strict';
import type { FieldTable } from '../amqp/field-table.js';
import { SlotList, type Slot } from './slot-list.js';
import type { Matcher, MatcherBinding } from './types.js';

interface Placement<T> {
  readonly list: SlotList<T>;
  readonly slot: Slot<T>;
}

export class DirectMatcher<T extends MatcherBinding> implements Matcher<T> {
  readonly usesRoutingKey = true;
  private readonly byKey = new Map<string, SlotList<T>>();
  private readonly placements = new Map<T, Placement<T>>();

  get size(): number {
    return this.placements.size;
  }

  add(binding: T): void {
    assert.ok(!this.placements.has(binding), 'binding added twice');
    let list = this.byKey.get(binding.routingKey);
    if (list === undefined) {
      list = new SlotList<T>();
      this.byKey.set(binding.routingKey, list);
    }
    this.placements.set(binding, { list, slot: list.add(binding) });
  }

  remove(binding: T): void {
    const placement = this.placements.get(binding);
    assert.ok(placement !== undefined, 'removing a binding that was never added');
    placement.list.remove(placement.slot);
    if (placement.list.length === 0) this.byKey.delete(binding.routingKey);
    this.placements.delete(binding);
  }

  match(routingKey: string, _getHeaders: () => FieldTable | undefined, visit: (binding: T) => void): void {
    const list = this.byKey.get(routingKey);
    if (list === undefined) return;
    const entries = list.entries;
    for (let i = 0; i < entries.length; i++) visit((entries[i] as Slot<T>).value);
  }
}
