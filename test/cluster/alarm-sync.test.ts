/**
 * This node's alarm key in etcd, through a real etcd that stops answering for a while
 * (SIGSTOP): a write that fails is tried again until one succeeds, with the latest state, so
 * a cleared alarm cannot stay behind in etcd and hold the cluster's publishers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { AlarmSync } from '../../src/cluster/alarm-sync.js';
import { alarmKey } from '../../src/cluster/etcd-keys.js';
import { createLogger } from '../../src/node/logger.js';
import { waitFor } from '../helpers/broker.js';
import { startEtcd } from '../helpers/etcd.js';

/** Short, so that a call to the stopped etcd fails within the test's deadlines. */
const callDeadlineMs = 300;
/** The retry backoff (250 ms doubling) plus the client's own attempts fit well within this. */
const settleDeadlineMs = 15_000;

describe('alarm sync (real etcd)', () => {
  test('a cleared alarm whose write failed while etcd did not answer reaches etcd once it does, and the latest state wins', async () => {
    const etcd = await startEtcd();
    const writer = new Etcd3({ hosts: [etcd.endpoint], dialTimeout: callDeadlineMs, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callDeadlineMs }) });
    const reader = new Etcd3({ hosts: [etcd.endpoint] });
    const lines: string[] = [];
    const sync = new AlarmSync(writer.namespace('alarm-sync-test/'), 'n1', () => true, () => undefined, createLogger('warn', (line) => lines.push(line)));
    const stored = (): Promise<string | null> => reader.namespace('alarm-sync-test/').get(alarmKey('n1')).string();
    let stopped = false;
    try {
      await sync.publish(['disk']);
      assert.equal(await stored(), '["disk"]', 'the alarm is written while etcd answers');

      etcd.process.kill('SIGSTOP');
      stopped = true;
      // Both resolve after their write's first attempt, which fails: etcd does not answer.
      await Promise.all([sync.publish(['disk', 'memory']), sync.publish([])]);
      await waitFor(() => lines.some((l) => /could not tell the cluster of this node's resource alarms .*trying again in \d+ ms/.test(l)), 'a failed write reported with its retry', settleDeadlineMs);
      etcd.process.kill('SIGCONT');
      stopped = false;

      await waitFor(async () => (await stored()) === null, 'the cleared alarm (the latest state) written once etcd answers again', settleDeadlineMs);
      // Nothing older comes after it: the key stays gone while the retries wind down.
      await sync.close();
      assert.equal(await stored(), null, 'no stale write lands after the latest one');
    } finally {
      if (stopped) etcd.process.kill('SIGCONT');
      await sync.close();
      writer.close();
      reader.close();
      await etcd.stop();
    }
  });
});
