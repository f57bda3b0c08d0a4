/**
 * recovered-queue.ts against a plain model: random runs of enqueues, settles (of present,
 * absent and already settled ids) and delivered markers, across several queues sharing one id
 * counter as a shard's log does. What recovery hands on must match the model exactly: each
 * queue's messages in order with their fields and flags, and every queue's messages merged in
 * log order. Runs long enough to cross chunk boundaries and trigger compaction many times.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecoveredQueue, forEachInLogOrder } from '../../src/shard/recovered-queue.js';
import { PagedFlag, newPagedEntry, pagedFlags, pagedPriority } from '../../src/shard/paged-tail.js';

interface ModelMessage {
  id: number;
  logOffset: number;
  expiresAtMs: number;
  bodyBytes: number;
  priority: number;
  delivered: boolean;
}

type Op = { kind: 'enqueue'; queue: number; count: number } | { kind: 'settle'; queue: number; pick: number; count: number } | { kind: 'delivered'; queue: number; pick: number };

const queueCount = 3;
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('enqueue' as const), queue: fc.nat(queueCount - 1), count: fc.integer({ min: 1, max: 3000 }) }),
  fc.record({ kind: fc.constant('settle' as const), queue: fc.nat(queueCount - 1), pick: fc.nat(), count: fc.integer({ min: 1, max: 6000 }) }),
  fc.record({ kind: fc.constant('delivered' as const), queue: fc.nat(queueCount - 1), pick: fc.nat() }),
);

function run(ops: Op[]): void {
  const queues = Array.from({ length: queueCount }, () => new RecoveredQueue());
  const model: ModelMessage[][] = Array.from({ length: queueCount }, () => []);
  let nextId = 1;
  let nextOffset = 0;
  for (const o of ops) {
    const q = queues[o.queue] as RecoveredQueue;
    const m = model[o.queue] as ModelMessage[];
    if (o.kind === 'enqueue') {
      for (let i = 0; i < o.count; i++) {
        nextOffset += 1 + (nextId % 3); // other records between enqueues
        const msg = { id: nextId, logOffset: nextOffset, expiresAtMs: nextId % 5 === 0 ? 1_700_000_000_000 + nextId : 0, bodyBytes: nextId % 1000, priority: nextId % 11, delivered: false };
        nextId += 1 + (nextId % 2); // ids rise, with gaps (other queues, transient messages)
        q.append(msg.id, msg.logOffset, msg.expiresAtMs, msg.bodyBytes, pagedFlags(true, true, false, msg.priority));
        m.push(msg);
      }
    } else if (o.kind === 'settle') {
      // Mostly from the head (acks), some from anywhere, some of ids not (or no longer) there.
      for (let i = 0; i < o.count && m.length > 0; i++) {
        const at: number = i % 4 === 3 ? (o.pick + i * 7919) % m.length : 0;
        const id: number = (m[at] as ModelMessage).id;
        assert.equal(q.settle(id), true);
        m.splice(at, 1);
        assert.equal(q.settle(id), false, 'a second settle of the same id finds nothing');
      }
      assert.equal(q.settle(nextId + 1), false);
    } else if (m.length > 0) {
      const msg = m[o.pick % m.length] as ModelMessage;
      q.markDelivered(msg.id);
      msg.delivered = true;
    }
    assert.equal(q.length, m.length);
  }

  const merged: number[] = [];
  forEachInLogOrder(queues, (id, logOffset) => {
    merged.push(id);
    assert.ok(logOffset > 0);
  });
  assert.deepEqual(merged, model.flat().map((x) => x.id).sort((a, b) => a - b), 'merged in id (log) order');

  const e = newPagedEntry();
  e.enqueuedAtMs32 = 42;
  queues.forEach((q, qi) => {
    const got: ModelMessage[] = [];
    q.take(e, (x) => {
      assert.equal(x.flags & PagedFlag.removed, 0);
      assert.equal(x.flags & (PagedFlag.persisted | PagedFlag.persistent), PagedFlag.persisted | PagedFlag.persistent);
      assert.equal(x.enqueuedAtMs32, 42);
      got.push({ id: x.id, logOffset: x.logOffset, expiresAtMs: x.expiresAtMs, bodyBytes: x.bodyBytes, priority: pagedPriority(x.flags), delivered: (x.flags & PagedFlag.redelivered) !== 0 });
    });
    assert.deepEqual(got, model[qi]);
    assert.equal(q.length, 0, 'taken: empty');
  });
}

test('recovered queues match the model: order, fields, flags, merge in log order', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => run(ops)),
    { numRuns: 60 },
  );
});

test('after a crash every message not yet marked is visited once and marked', () => {
  const q = new RecoveredQueue();
  for (let id = 1; id <= 10_000; id++) q.append(id, id, 0, 1, pagedFlags(true, true, false, 0));
  for (let id = 1; id <= 10_000; id += 3) q.markDelivered(id);
  for (let id = 2; id <= 10_000; id += 3) q.settle(id);
  const visited: number[] = [];
  q.markAllDelivered((id) => visited.push(id));
  assert.deepEqual(visited, Array.from({ length: 3333 }, (_, i) => 3 * (i + 1)));
  const again: number[] = [];
  q.markAllDelivered((id) => again.push(id));
  assert.deepEqual(again, []);
  let redelivered = 0;
  q.take(newPagedEntry(), (x) => {
    if ((x.flags & PagedFlag.redelivered) !== 0) redelivered++;
  });
  assert.equal(redelivered, 10_000 - 3333);
});

test('a message id that does not rise is refused', () => {
  const q = new RecoveredQueue();
  q.append(5, 0, 0, 0, 0);
  assert.throws(() => q.append(5, 1, 0, 0, 0), /recovered message 5 appended after 5/);
});
