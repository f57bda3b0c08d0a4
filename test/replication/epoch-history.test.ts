/** The leader-epoch rule: where a follower's log stops agreeing with the leader's. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EpochHistory, epochListProblem } from '../../src/replication/epoch-history.js';

function history(...pairs: Array<[number, number]>): EpochHistory {
  return new EpochHistory(pairs.map(([epoch, startOffset]) => ({ epoch, startOffset })));
}

describe('epoch history', () => {
  test('a follower that is a prefix of the leader keeps everything', () => {
    const leader = history([1, 0], [2, 10]);
    assert.equal(leader.divergence(30, history([1, 0], [2, 10]), 25), 25);
    assert.equal(leader.divergence(30, history([1, 0]), 8), 8);
    assert.equal(leader.divergence(30, history(), 0), 0);
  });

  test('a tail written in an epoch the leader ended earlier is cut where the leader\'s next epoch began', () => {
    // The follower led epoch 1 past offset 10; the leader's epoch 2 began at 10.
    assert.equal(history([1, 0], [2, 10]).divergence(30, history([1, 0]), 14), 10);
  });

  test('a follower epoch the leader never had is cut back to where the leader\'s history allows', () => {
    // Follower: epoch 2 at 10 (a leader that lost), leader: epoch 1 up to 12, then epoch 3 at 12.
    const leader = history([1, 0], [3, 12]);
    assert.equal(leader.divergence(20, history([1, 0], [2, 10]), 15), 10);
    // Two competing epochs in a row: 2 at 10 and 4 at 13 against the leader's 1, 3 at 12, 5 at 16.
    assert.equal(history([1, 0], [3, 12], [5, 16]).divergence(20, history([1, 0], [2, 10], [4, 13]), 18), 10);
  });

  test('a follower ahead of the leader in the same epoch is cut to the leader\'s end', () => {
    assert.equal(history([1, 0]).divergence(5, history([1, 0]), 9), 5);
  });

  test('records of no known epoch are all cut', () => {
    assert.equal(history([2, 5]).divergence(9, history([1, 0]), 4), 0);
    assert.equal(history([1, 0]).divergence(9, history(), 4), 0);
  });

  test('epoch lists from peers are checked, not asserted', () => {
    assert.equal(epochListProblem([{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 4 }]), undefined);
    assert.match(epochListProblem([{ epoch: 2, startOffset: 0 }, { epoch: 2, startOffset: 4 }]) ?? '', /does not follow/);
    assert.match(epochListProblem([{ epoch: 1, startOffset: 5 }, { epoch: 2, startOffset: 4 }]) ?? '', /does not follow/);
  });

  test('truncate drops epochs that began at or after the cut', () => {
    const h = history([1, 0], [2, 10], [3, 20]);
    h.truncate(10);
    assert.deepEqual(h.entries, [{ epoch: 1, startOffset: 0 }]);
    assert.equal(h.endOffsetOf(1, 10), 10);
  });
});
