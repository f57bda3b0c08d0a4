// headers: a binding matches when the message headers meet the binding's arguments.
//
// x-match=all (default) needs every condition to hold, any needs one; keys starting with "x-"
// are conditions only under all-with-x / any-with-x, and x-match itself never is. A condition
// whose value is void asks only that the header be present; others compare values as in
// header-value-match.ts. So all with no conditions matches every message, any with none matches
// nothing (RabbitMQ's match_all / match_any of an empty list).
//
// RabbitMQ tests every binding of the exchange for every message. Here each binding is filed
// under the (header, value) pairs that can make it match — one pair for all-mode (failing it
// fails the binding), every pair for any-mode — and a message only tests the bindings filed
// under its own headers, each at most once.
import assert from 'node:assert/strict';
import type { FieldTable, FieldValue } from '../amqp/field-table.js';
import { headerValueKey, headerValueMatches } from './header-value-match.js';
import { X_MATCH, xMatchMode } from './headers-binding-args.js';
import { SlotList, type Slot } from './slot-list.js';
import type { Matcher, MatcherBinding } from './types.js';

const X_PREFIX = 'x-';

export interface HeadersCondition {
  readonly key: string;
  /** null: the binding's value is void, so presence is enough. */
  readonly value: FieldValue | null;
}

interface Filing<T> {
  readonly list: SlotList<CompiledBinding<T>>;
  readonly slot: Slot<CompiledBinding<T>>;
}

class CompiledBinding<T> {
  readonly filings: Filing<T>[] = [];
  /** The match call that last tested this binding, so one filed twice is tested once. */
  mark = 0;

  constructor(
    readonly binding: T,
    readonly any: boolean,
    readonly conditions: readonly HeadersCondition[],
  ) {}

  matches(headers: FieldTable | undefined): boolean {
    for (const condition of this.conditions) {
      if (conditionHolds(condition, headers) === this.any) return this.any;
    }
    return !this.any;
  }
}

function conditionHolds(condition: HeadersCondition, headers: FieldTable | undefined): boolean {
  if (headers === undefined || !Object.hasOwn(headers, condition.key)) return false;
  const header = headers[condition.key];
  if (header === undefined) return false;
  return condition.value === null || headerValueMatches(condition.value, header);
}

export function compileHeadersConditions(args: FieldTable): { any: boolean; conditions: HeadersCondition[] } {
  const mode = xMatchMode(args);
  const withX = mode === 'all-with-x' || mode === 'any-with-x';
  const conditions: HeadersCondition[] = [];
  for (const key of Object.keys(args)) {
    const value = args[key];
    if (value === undefined || key === X_MATCH || (!withX && key.startsWith(X_PREFIX))) continue;
    conditions.push({ key, value: value.type === 'V' ? null : value });
  }
  return { any: mode === 'any' || mode === 'any-with-x', conditions };
}

export class HeadersMatcher<T extends MatcherBinding> implements Matcher<T> {
  readonly usesRoutingKey = false;
  private readonly compiled = new Map<T, CompiledBinding<T>>();
  /** all-mode bindings without conditions: they match every message. */
  private readonly unconditional = new SlotList<CompiledBinding<T>>();
  private readonly byPresence = new Map<string, SlotList<CompiledBinding<T>>>();
  private readonly byValue = new Map<string, Map<string, SlotList<CompiledBinding<T>>>>();
  private step = 0;

  get size(): number {
    return this.compiled.size;
  }

  add(binding: T): void {
    assert.ok(!this.compiled.has(binding), 'binding added twice');
    const { any, conditions } = compileHeadersConditions(binding.arguments);
    const entry = new CompiledBinding(binding, any, conditions);
    this.compiled.set(binding, entry);
    if (any) {
      for (const condition of conditions) this.file(entry, condition);
      return;
    }
    // One condition suffices for all-mode; a valued one narrows candidates more than a void one.
    const anchor = conditions.find((c) => c.value !== null) ?? conditions[0];
    if (anchor === undefined) this.fileIn(entry, this.unconditional);
    else this.file(entry, anchor);
  }

  remove(binding: T): void {
    const entry = this.compiled.get(binding);
    assert.ok(entry !== undefined, 'removing a binding that was never added');
    this.compiled.delete(binding);
    for (const { list, slot } of entry.filings) list.remove(slot);
    for (const condition of entry.conditions) this.dropEmptyLists(condition);
  }

  match(_routingKey: string, getHeaders: () => FieldTable | undefined, visit: (binding: T) => void): void {
    if (this.compiled.size === 0) return;
    const headers = getHeaders();
    const step = ++this.step;
    this.test(this.unconditional, headers, step, visit);
    if (headers === undefined) return;
    for (const key in headers) {
      if (!Object.hasOwn(headers, key)) continue;
      const present = this.byPresence.get(key);
      if (present !== undefined) this.test(present, headers, step, visit);
      const byValue = this.byValue.get(key);
      const header = headers[key];
      if (byValue === undefined || header === undefined) continue;
      const valued = byValue.get(headerValueKey(header));
      if (valued !== undefined) this.test(valued, headers, step, visit);
    }
  }

  /**
   * Tests the bindings filed under a condition the message is known to meet: an any-mode
   * binding then matches without looking further, an all-mode one checks all its conditions.
   */
  private test(list: SlotList<CompiledBinding<T>>, headers: FieldTable | undefined, step: number, visit: (binding: T) => void): void {
    const entries = list.entries;
    for (let i = 0; i < entries.length; i++) {
      const entry = (entries[i] as Slot<CompiledBinding<T>>).value;
      if (entry.mark === step) continue;
      entry.mark = step;
      if (entry.any || entry.matches(headers)) visit(entry.binding);
    }
  }

  private file(entry: CompiledBinding<T>, condition: HeadersCondition): void {
    if (condition.value === null) {
      let list = this.byPresence.get(condition.key);
      if (list === undefined) this.byPresence.set(condition.key, (list = new SlotList()));
      this.fileIn(entry, list);
      return;
    }
    let byValue = this.byValue.get(condition.key);
    if (byValue === undefined) this.byValue.set(condition.key, (byValue = new Map()));
    const valueKey = headerValueKey(condition.value);
    let list = byValue.get(valueKey);
    if (list === undefined) byValue.set(valueKey, (list = new SlotList()));
    this.fileIn(entry, list);
  }

  private fileIn(entry: CompiledBinding<T>, list: SlotList<CompiledBinding<T>>): void {
    entry.filings.push({ list, slot: list.add(entry) });
  }

  private dropEmptyLists(condition: HeadersCondition): void {
    if (condition.value === null) {
      if (this.byPresence.get(condition.key)?.length === 0) this.byPresence.delete(condition.key);
      return;
    }
    const byValue = this.byValue.get(condition.key);
    if (byValue === undefined) return;
    const valueKey = headerValueKey(condition.value);
    if (byValue.get(valueKey)?.length === 0) byValue.delete(valueKey);
    if (byValue.size === 0) this.byValue.delete(condition.key);
  }
}
