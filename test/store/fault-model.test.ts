/**
 * Model-based test with injected I/O faults: random appends and commits, some of them with a
 * write, fdatasync, open or truncate failing. Whatever happens, a later commit (or a reopen, if
 * the log had to give up) must leave exactly a prefix of the model on disk that holds at least
 * every record a commit reported durable, with the right payloads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { StoreWriteError } from '../../src/store/store-errors.js';
import { FaultyFileSystem, openLog, withTempDir } from './store-test-kit.js';
import type { Opened } from './store-test-kit.js';

type FaultOperation = 'write' | 'datasync' | 'open' | 'truncate';

type Op =
  | { op: 'append'; count: number; payloadBytes: number }
  | { op: 'commit' }
  | { op: 'faultyCommit'; operation: FaultOperation; code: 'EIO' | 'ENOSPC' }
  | { op: 'reopen' };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('append' as const), count: fc.integer({ min: 1, max: 30 }), payloadBytes: fc.integer({ min: 0, max: 500 }) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'commit' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('faultyCommit' as const),
      operation: fc.constantFrom<FaultOperation>('write', 'datasync', 'open', 'truncate'),
      code: fc.constantFrom<'EIO' | 'ENOSPC'>('EIO', 'ENOSPC'),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
);

function payload(offset: number, payloadBytes: number): Buffer {
  return Buffer.alloc(payloadBytes, offset & 0xff);
}

test('after injected write/sync faults the log holds a prefix of what was appended, including everything reported durable', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 5, maxLength: 25 }), fc.boolean(), fc.boolean(), async (ops, preallocate, fsyncOnThread) => {
      await withTempDir(async (dir) => {
        const fs = new FaultyFileSystem();
        const options = { segmentBytes: 4096, preallocate, fileSystem: fs, fsyncOnThread };
        const model: Buffer[] = [];
        let durable = -1;
        let opened: Opened = await openLog(dir, options);
        const reopen = async (): Promise<void> => {
          fs.heal();
          await opened.log.close().catch((error: unknown) => assert.ok(error instanceof StoreWriteError, String(error)));
          opened = await openLog(dir, options);
          const recovered = opened.records.length;
          assert.ok(recovered >= durable + 1, `recovered ${recovered} records, ${durable + 1} were durable`);
          assert.ok(recovered <= model.length, `recovered ${recovered} records, only ${model.length} appended`);
          opened.records.forEach((record) => assert.deepEqual(record.payload, model[record.offset], `record ${record.offset}`));
          model.length = recovered;
        };
        try {
          for (const step of ops) {
            const { log } = opened;
            switch (step.op) {
              case 'append':
                if (log.stats().pendingBytes > 0 && (await log.commit().then(() => false, () => true))) await reopen();
                for (let i = 0; i < step.count; i++) {
                  const offset = model.length;
                  const body = payload(offset, step.payloadBytes);
                  assert.equal(opened.log.append(1, body), offset);
                  model.push(body);
                }
                break;
              case 'commit':
              case 'faultyCommit': {
                if (step.op === 'faultyCommit') fs.fail(step.operation, step.code);
                const result = await log.commit().then(
                  (flushed) => flushed,
                  (error: unknown) => {
                    assert.ok(error instanceof StoreWriteError, String(error));
                    return undefined;
                  },
                );
                fs.heal();
                if (result !== undefined) durable = result;
                // Once healed, a commit must succeed unless the log had to give up.
                const healed = await log.commit().then(
                  (flushed) => flushed,
                  () => undefined,
                );
                if (healed === undefined) {
                  await reopen();
                } else {
                  assert.equal(healed, model.length - 1);
                  durable = healed;
                }
                break;
              }
              case 'reopen':
                await reopen();
                assert.equal(opened.records.length, model.length);
                break;
            }
          }
          await reopen();
        } finally {
          fs.heal();
          await opened.log.close().catch(() => undefined);
        }
      });
    }),
    { numRuns: 25 },
  );
});
