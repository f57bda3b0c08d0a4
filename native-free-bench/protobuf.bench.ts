/**
 * Replication batch encode/decode with protobufjs: one Batch message wrapping 256 raw
 * log records of 256 B in a bytes field (the design), against one protobuf message per
 * record (what the design avoids).
 */
import { Bench } from 'tinybench';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';

export interface BenchFigure {
  name: string;
  opsPerSec: number;
  note?: string;
}

const recordsPerBatch = 256;
const recordBytes = 256;

export async function protobufBench(timeMs = 300): Promise<BenchFigure[]> {
  const root = await protobuf.load(fileURLToPath(new URL('../../proto/replication.proto', import.meta.url)));
  const Batch = root.lookupType('warren.replication.Batch');
  const Ack = root.lookupType('warren.replication.Ack');
  const records = Buffer.alloc(recordsPerBatch * recordBytes, 7);
  const batch = Batch.create({ queue: 'orders', epoch: 3, baseOffset: 1_000_000, recordCount: recordsPerBatch, commitOffset: 999_000, checksum: 0xdeadbeef, records });
  const encoded = Batch.encode(batch).finish();
  const one = Batch.create({ queue: 'orders', epoch: 3, baseOffset: 1, recordCount: 1, commitOffset: 0, checksum: 1, records: records.subarray(0, recordBytes) });
  const oneEncoded = Batch.encode(one).finish();
  const bench = new Bench({ time: timeMs });
  bench
    .add(`Batch encode (${recordsPerBatch} × ${recordBytes} B records in bytes)`, () => {
      Batch.encode(batch).finish();
    })
    .add(`Batch decode (${recordsPerBatch} × ${recordBytes} B records in bytes)`, () => {
      Batch.decode(encoded);
    })
    .add(`per-record message encode (${recordBytes} B)`, () => {
      Batch.encode(one).finish();
    })
    .add(`per-record message decode (${recordBytes} B)`, () => {
      Batch.decode(oneEncoded);
    })
    .add('Ack encode+decode', () => {
      Ack.decode(Ack.encode(Ack.create({ queue: 'orders', epoch: 3, ackedOffset: 123456, follower: 'n2' })).finish());
    });
  await bench.run();
  return bench.tasks.map((t) => {
    const r = t.result;
    const hz = r !== undefined && r.state === 'completed' ? Math.round(1000 / r.period) : 0;
    const perBatch = t.name.startsWith('Batch ');
    return {
      name: t.name,
      opsPerSec: hz,
      ...(perBatch ? { note: `${Math.round(hz * recordsPerBatch).toLocaleString('en-US')} records/s` } : {}),
    };
  });
}
