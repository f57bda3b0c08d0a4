// topic: a trie on the words of binding keys, with separate edges for '*' and '#'.
//
// Matching runs the trie as an NFA over the routing key's words: the set of live nodes
// advances one word at a time (literal edge, '*' edge, and a '#' node looping on itself),
// and entering a node also enters its '#' child (zero words). Each node enters a set at most
// once per word, so the cost is O(words × live nodes) even for keys like "#.#.#.#" that make a
// backtracking walk (RabbitMQ's) exponential, and every matching binding is visited once.
import assert from 'node:assert/strict';
import type { FieldTable } from '../amqp/field-table.js';
import { SlotList, type Slot } from './slot-list.js';
import { TOPIC_ANY_WORDS, TOPIC_ONE_WORD, TOPIC_WORD_SEPARATOR, topicWords } from './topic-words.js';
import type { Matcher, MatcherBinding } from './types.js';

// How a node was reached from its parent. Plain constants: isolatedModules keeps enums as objects.
const LITERAL = 0;
const ONE_WORD = 1;
const ANY_WORDS = 2;
type EdgeKind = typeof LITERAL | typeof ONE_WORD | typeof ANY_WORDS;

class TopicNode<T> {
  // Most nodes have one literal child; a Map per node would cost ~10x its memory at 100k bindings.
  onlyWord: string | null = null;
  onlyChild: TopicNode<T> | null = null;
  children: Map<string, TopicNode<T>> | null = null;
  oneWord: TopicNode<T> | null = null;
  anyWords: TopicNode<T> | null = null;
  bindings: SlotList<T> | null = null;
  /** The match step that last put this node in a live set (see TopicMatcher.step). */
  mark = 0;

  constructor(
    readonly parent: TopicNode<T> | null,
    readonly kind: EdgeKind,
    readonly word: string,
  ) {}

  literal(word: string): TopicNode<T> | null {
    if (this.children !== null) return this.children.get(word) ?? null;
    return this.onlyWord === word ? this.onlyChild : null;
  }

  hasLiterals(): boolean {
    return this.children !== null || this.onlyChild !== null;
  }

  isEmpty(): boolean {
    return (this.bindings === null || this.bindings.length === 0) && !this.hasLiterals() &&
      this.oneWord === null && this.anyWords === null;
  }
}

interface Placement<T> {
  readonly node: TopicNode<T>;
  readonly slot: Slot<T>;
}

export class TopicMatcher<T extends MatcherBinding> implements Matcher<T> {
  readonly usesRoutingKey = true;
  private readonly root = new TopicNode<T>(null, LITERAL, '');
  private readonly placements = new Map<T, Placement<T>>();
  private step = 0;
  // Live sets, reused between calls; never longer than the number of trie nodes.
  private live: TopicNode<T>[] = [];
  private next: TopicNode<T>[] = [];

  get size(): number {
    return this.placements.size;
  }

  add(binding: T): void {
    assert.ok(!this.placements.has(binding), 'binding added twice');
    let node = this.root;
    for (const word of topicWords(binding.routingKey)) node = this.childFor(node, word);
    node.bindings ??= new SlotList<T>();
    this.placements.set(binding, { node, slot: node.bindings.add(binding) });
  }

  remove(binding: T): void {
    const placement = this.placements.get(binding);
    assert.ok(placement !== undefined, 'removing a binding that was never added');
    this.placements.delete(binding);
    const { node, slot } = placement;
    node.bindings?.remove(slot);
    if (node.bindings !== null && node.bindings.length === 0) node.bindings = null;
    this.prune(node);
  }

  match(routingKey: string, _getHeaders: () => FieldTable | undefined, visit: (binding: T) => void): void {
    let live = this.live;
    let next = this.next;
    let liveCount = this.enter(this.root, live, 0, ++this.step);
    // The empty key has no words at all (not one empty word).
    let start = routingKey === '' ? -1 : 0;
    while (start >= 0 && liveCount > 0) {
      const dot = routingKey.indexOf(TOPIC_WORD_SEPARATOR, start);
      const end = dot < 0 ? routingKey.length : dot;
      let word: string | null = null;
      const step = ++this.step;
      let nextCount = 0;
      for (let i = 0; i < liveCount; i++) {
        const node = live[i] as TopicNode<T>;
        if (node.hasLiterals()) {
          word ??= routingKey.slice(start, end);
          const child = node.literal(word);
          if (child !== null) nextCount = this.enter(child, next, nextCount, step);
        }
        if (node.oneWord !== null) nextCount = this.enter(node.oneWord, next, nextCount, step);
        if (node.kind === ANY_WORDS) nextCount = this.enter(node, next, nextCount, step);
      }
      const swap = live;
      live = next;
      next = swap;
      liveCount = nextCount;
      start = dot < 0 ? -1 : dot + 1;
    }
    this.live = live;
    this.next = next;
    for (let i = 0; i < liveCount; i++) {
      const bindings = (live[i] as TopicNode<T>).bindings;
      if (bindings === null) continue;
      const entries = bindings.entries;
      for (let j = 0; j < entries.length; j++) visit((entries[j] as Slot<T>).value);
    }
  }

  /** Puts `node` and its chain of '#' children (each matching zero words) into `set`. */
  private enter(node: TopicNode<T>, set: TopicNode<T>[], count: number, step: number): number {
    let current: TopicNode<T> | null = node;
    while (current !== null && current.mark !== step) {
      current.mark = step;
      set[count++] = current;
      current = current.anyWords;
    }
    return count;
  }

  private childFor(node: TopicNode<T>, word: string): TopicNode<T> {
    if (word === TOPIC_ONE_WORD) return (node.oneWord ??= new TopicNode(node, ONE_WORD, word));
    if (word === TOPIC_ANY_WORDS) return (node.anyWords ??= new TopicNode(node, ANY_WORDS, word));
    const existing = node.literal(word);
    if (existing !== null) return existing;
    const child = new TopicNode(node, LITERAL, word);
    if (node.children !== null) {
      node.children.set(word, child);
    } else if (node.onlyChild === null) {
      node.onlyWord = word;
      node.onlyChild = child;
    } else {
      node.children = new Map([[node.onlyWord ?? '', node.onlyChild], [word, child]]);
      node.onlyWord = null;
      node.onlyChild = null;
    }
    return child;
  }

  /** Detaches empty nodes from the leaf upwards, so removed keys leave no garbage in the trie. */
  private prune(leaf: TopicNode<T>): void {
    let node = leaf;
    while (node.parent !== null && node.isEmpty()) {
      const parent: TopicNode<T> = node.parent;
      if (node.kind === ONE_WORD) parent.oneWord = null;
      else if (node.kind === ANY_WORDS) parent.anyWords = null;
      else if (parent.children !== null) {
        parent.children.delete(node.word);
        if (parent.children.size === 0) parent.children = null;
      } else {
        parent.onlyWord = null;
        parent.onlyChild = null;
      }
      node = parent;
    }
  }
}
