// fanout: every binding matches, whatever the routing key and headers.
import assert from 'node:assert/strict';
import type { FieldTable } from '../amqp/field-table.js';
import { SlotList, type Slot } from './slot-list.js';
import type { Matcher, MatcherBinding } from './types.js';

export class FanoutMatcher<T extends MatcherBinding> implements Matcher<T> {
  readonly usesRoutingKey = false;
  private readonly list = new SlotList<T>();
  private readonly slots = new Map<T, Slot<T>>();

  get size(): number {
    return this.slots.size;
  }

  add(binding: T): void {
    assert.ok(!this.slots.has(binding), 'binding added twice');
    this.slots.set(binding, this.list.add(binding));
  }

  remove(binding: T): void {
    const slot = this.slots.get(binding);
    assert.ok(slot !== undefined, 'removing a binding that was never added');
    this.list.remove(slot);
    this.slots.delete(binding);
  }

  match(_routingKey: string, _getHeaders: () => FieldTable | undefined, visit: (binding: T) => void): void {
    const entries = this.list.entries;
    for (let i = 0; i < entries.length; i++) visit((entries[i] as Slot<T>).value);
  }
}
