/**
 * Model-based test: random sequences of append, commit, read, truncateTo, releaseBefore and
 * reopen against a plain array of payloads; the log must agree with the model after every step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { openLog, withTempDir } from './store-test-kit.js';
import type { FsyncPolicy } from '../../src/store/fsync-policy.js';
import type { LogOffset } from '../../src/store/log-offset.js';
import type { Opened } from './store-test-kit.js';

type Op =
  | { op: 'append'; count: number; payloadBytes: number }
  | { op: 'commit' }
  | { op: 'read'; at: number }
  | { op: 'truncate'; at: number }
  | { op: 'release'; at: number }
  | { op: 'reopen' };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('append' as const), count: fc.integer({ min: 1, max: 40 }), payloadBytes: fc.integer({ min: 0, max: 700 }) }) },
  { weight: 3, arbitrary: fc.constant({ op: 'commit' as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('read' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('release' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
);

const fsyncArbitrary: fc.Arbitrary<FsyncPolicy> = fc.constantFrom<FsyncPolicy>({ mode: 'always' }, { mode: 'never' }, { mode: 'batch', batchMs: 1 });

function payload(offset: number, generation: number, payloadBytes: number): Buffer {
  const buf = Buffer.alloc(payloadBytes);
  for (let i = 0; i < payloadBytes; i++) buf[i] = (offset + generation * 31 + i) & 0xff;
  return buf;
}

test('the log agrees with a simple model under random operations', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 5, maxLength: 30 }), fc.boolean(), fsyncArbitrary, async (ops, preallocate, fsync) => {
      await withTempDir(async (dir) => {
        const options = { segmentBytes: 4096, preallocate, fsync };
        const model: Buffer[] = [];
        let first = 0;
        let generation = 0;
        let opened: Opened = await openLog(dir, options);
        const pick = (at: number, from: number, to: number): number => from + Math.min(to - from, Math.floor(at * (to - from + 1)));
        try {
          for (const step of ops) {
            const { log } = opened;
            switch (step.op) {
              case 'append':
                for (let i = 0; i < step.count; i++) {
                  const offset = model.length;
                  const body = payload(offset, generation, step.payloadBytes);
                  assert.equal(log.append(offset % 256, body), offset);
                  model.push(body);
                }
                break;
              case 'commit':
                assert.equal(await log.commit(), model.length - 1);
                assert.equal(log.writtenOffset, model.length - 1);
                if (fsync.mode !== 'batch') assert.equal(log.flushedOffset, model.length - 1);
                break;
              case 'read': {
                if (model.length === first) break;
                const offset = pick(step.at, first, model.length - 1);
                const record = await log.read(offset as LogOffset);
                assert.equal(record.kind, offset % 256);
                assert.deepEqual(record.payload, model[offset]);
                break;
              }
              case 'truncate': {
                const offset = pick(step.at, first, model.length);
                await log.truncateTo(offset as LogOffset);
                model.length = offset;
                generation += 1;
                assert.equal(log.nextOffset, offset);
                break;
              }
              case 'release': {
                const offset = pick(step.at, first, model.length);
                await log.releaseBefore(offset as LogOffset);
                assert.ok(log.firstOffset <= Math.max(offset, first), 'never releases a needed record');
                assert.ok(log.firstOffset >= first);
                first = log.firstOffset;
                break;
              }
              case 'reopen': {
                await log.close();
                opened = await openLog(dir, options);
                assert.equal(opened.report.truncatedBytes, 0);
                assert.equal(opened.log.firstOffset, first);
                assert.equal(opened.records.length, model.length - first);
                opened.records.forEach((record) => assert.deepEqual(record.payload, model[record.offset], `record ${record.offset}`));
                break;
              }
            }
          }
        } finally {
          await opened.log.close();
        }
      });
    }),
    { numRuns: 25 },
  );
});
