import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ClientSlot, CounterTotals, createSharedCounters, Phase, SharedCounters } from '../../src/bench/shared-counters.js';

describe('shared counters', () => {
  it('keeps exact totals across the 32-bit wrap of a counter', () => {
    const counters = new SharedCounters(createSharedCounters(2));
    const totals = new CounterTotals(counters);
    counters.add(1, ClientSlot.consumed, 2 ** 31 - 10);
    totals.sample();
    counters.add(1, ClientSlot.consumed, 2 ** 31);
    totals.sample();
    counters.add(1, ClientSlot.consumed, 100);
    totals.sample();
    assert.equal(totals.of(1, ClientSlot.consumed), 2 ** 32 + 90);
    assert.equal(totals.sum(ClientSlot.consumed), 2 ** 32 + 90);
    assert.equal(totals.of(0, ClientSlot.consumed), 0);
  });

  it('sums per-client slots separately', () => {
    const counters = new SharedCounters(createSharedCounters(3));
    const totals = new CounterTotals(counters);
    counters.add(0, ClientSlot.published, 5);
    counters.add(2, ClientSlot.published, 7);
    counters.add(0, ClientSlot.confirmed, 4);
    counters.set(2, ClientSlot.running, 1);
    totals.sample();
    assert.equal(totals.sum(ClientSlot.published), 12);
    assert.equal(totals.sum(ClientSlot.confirmed), 4);
    assert.equal(totals.runningCount(), 1);
    assert.throws(() => counters.add(3, ClientSlot.published, 1), /client 3 outside 0\.\.2/);
  });

  it('moves the phase only forward', () => {
    const counters = new SharedCounters(createSharedCounters(1));
    counters.advancePhase(Phase.stopPublishing);
    counters.advancePhase(Phase.running);
    assert.equal(counters.phase(), Phase.stopPublishing);
    counters.advancePhase(Phase.abort);
    assert.equal(counters.phase(), Phase.abort);
  });

  it('wakes a waiter on another thread and hands it the start time', async () => {
    const buffer = createSharedCounters(1);
    const counters = new SharedCounters(buffer);
    const worker = new Worker(new URL('./fixtures/phase-waiter.js', import.meta.url), { workerData: { buffer } });
    worker.on('error', (error) => assert.fail(error));
    try {
      const deadline = Date.now() + 5000;
      while (counters.readyGroups() < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(counters.readyGroups(), 1);
      const reply = new Promise((resolve) => worker.once('message', resolve));
      counters.setStartMicros(123456.5);
      counters.advancePhase(Phase.running);
      assert.equal(await reply, 123456.5);
      assert.equal(counters.read(0, ClientSlot.published), 3);
    } finally {
      await worker.terminate();
    }
  });
});
