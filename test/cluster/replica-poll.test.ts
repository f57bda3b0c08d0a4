/**
 * The replica poll through a real etcd: the question carries the placement epoch to fence at,
 * only candidates answer (so only they fence), and the question is gone once asked.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ControlPlane } from '../../src/cluster/control-plane.js';
import { ReplicaPoll, pollFenceMs } from '../../src/cluster/replica-poll.js';
import { createLogger } from '../../src/node/logger.js';
import { etcdForSuite } from '../helpers/etcd.js';

describe('replica poll (real etcd)', () => {
  const etcd = etcdForSuite();
  const cleanup = etcd.cleanup;


  test('candidates are asked at the placement epoch and answer; a replica that is no candidate stays out', async () => {
    const plane = new ControlPlane({ hosts: [etcd.endpoint], clusterName: 'poll', leaseMs: 3000 });
    cleanup.push(() => plane.close());
    const log = createLogger('warn', () => undefined);
    const asked: { node: string; queueId: number; epoch: number; fenceMs: number }[] = [];
    const replicas = new Map([
      ['n2', { epoch: 4, offset: 100 }],
      ['n3', { epoch: 4, offset: 105 }],
      ['n4', { epoch: 4, offset: 999 }],
    ]);
    for (const [node, position] of replicas) {
      const p = new ReplicaPoll(
        plane.ns,
        node,
        async (queueId, epoch, fenceMs) => {
          asked.push({ node, queueId, epoch, fenceMs });
          return position;
        },
        log,
      );
      await p.start();
      cleanup.unshift(() => p.close());
    }
    const controller = new ReplicaPoll(plane.ns, 'n1', async () => undefined, log);

    const answers = await controller.ask(42, 4, ['n2', 'n3'], 5_000);
    assert.deepEqual(
      answers.sort((x, y) => x.node.localeCompare(y.node)),
      [
        { node: 'n2', epoch: 4, offset: 100 },
        { node: 'n3', epoch: 4, offset: 105 },
      ],
    );
    assert.deepEqual(
      asked.sort((x, y) => x.node.localeCompare(y.node)),
      [
        { node: 'n2', queueId: 42, epoch: 4, fenceMs: pollFenceMs },
        { node: 'n3', queueId: 42, epoch: 4, fenceMs: pollFenceMs },
      ],
      'n4 holds a replica but is no candidate: it was not fenced',
    );
    assert.equal((await plane.ns.getAll().prefix('poll/').keys()).length, 0, 'the question and its answers are removed');
  });
});
