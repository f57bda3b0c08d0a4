// Micro-benchmarks of the AMQP codec: frame parsing, method decode/encode, field tables,
// properties and the delivery write path. Each task runs a batch of operations per
// iteration so timer resolution does not dominate; opsPerSec is per operation.
// Run alone: node dist/native-free-bench/codec.bench.js
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import {
  FrameParser,
  FrameWriter,
  Method,
  decodeContentHeader,
  decodeMethod,
  decodeProperties,
  decodeTable,
  encodeProperties,
  encodeShortstr,
  encodeShortstrPair,
  encodeTable,
  peekDeliveryMode,
  peekHeaders,
  tableFromJs,
} from '../src/amqp/index.js';

export interface BenchResult {
  name: string;
  opsPerSec: number;
  note?: string;
}

const bodyBytes = 256;
const frameMaxBytes = 131072;
/** operations per benchmark iteration */
const batch = 1000;
/** deliveries between two FrameWriter.take() calls, minus one (128 x ~330 B ~ 42 KiB) */
const takeEveryMask = 127;

function publishStream(messages: number): Buffer {
  const w = new FrameWriter();
  const props = encodeProperties({ contentType: 'application/octet-stream', deliveryMode: 2 });
  const body = Buffer.alloc(bodyBytes, 7);
  for (let i = 0; i < messages; i++) {
    w.method(1, { id: Method.BasicPublish, args: { ticket: 0, exchange: 'amq.direct', routingKey: 'bench.queue', mandatory: false, immediate: false } });
    w.contentHeader(1, 60, body.length, props);
    w.body(1, body, frameMaxBytes);
  }
  return w.take();
}

export async function codecBench(timeMs = 300): Promise<BenchResult[]> {
  const stream = publishStream(batch);
  const frames: Array<{ type: number; payload: Buffer }> = [];
  new FrameParser(frameMaxBytes).push(stream, (type, _channel, payload) => frames.push({ type, payload: Buffer.from(payload) }));
  const publishPayload = (frames[0] as { payload: Buffer }).payload;
  const headerPayload = (frames[1] as { payload: Buffer }).payload;

  const headers = tableFromJs({ 'x-death-count': 3, 'x-first-death-queue': 'orders', 'x-match': 'all', retry: true, trace: { id: 'a1b2c3', hops: 4 } });
  const headersBytes = encodeTable(headers);
  const properties = { contentType: 'application/json', deliveryMode: 2, priority: 1, correlationId: 'c-42', messageId: 'm-42', timestamp: 1_700_000_000, headers };
  const propertyBytes = encodeProperties(properties);

  const consumerTag = encodeShortstr('amq.ctag-bench-0001');
  const names = encodeShortstrPair('amq.direct', 'bench.queue');
  const deliverProps = encodeProperties({ contentType: 'application/octet-stream', deliveryMode: 2 });
  const body = Buffer.alloc(bodyBytes, 7);
  const writer = new FrameWriter();
  const parser = new FrameParser(frameMaxBytes);
  let sink = 0;

  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs) });
  bench
    .add('frame parse (publish: method+header+256 B body)', () => {
      parser.push(stream, (type) => {
        sink += type;
      });
    })
    .add('basic.publish method decode', () => {
      for (let i = 0; i < batch; i++) sink += decodeMethod(publishPayload).id;
    })
    .add('publish path: method decode + content header + peek delivery-mode', () => {
      for (let i = 0; i < batch; i++) {
        sink += decodeMethod(publishPayload).id;
        const h = decodeContentHeader(headerPayload);
        sink += peekDeliveryMode(h.propertyBytes) + h.bodySize;
      }
    })
    .add('basic.deliver + content header + 256 B body written (FrameWriter)', () => {
      for (let i = 0; i < batch; i++) {
        writer.basicDeliver(1, consumerTag, i + 1, false, names);
        writer.contentHeader(1, 60, body.length, deliverProps);
        writer.body(1, body, frameMaxBytes);
        // a connection hands the socket ~40 KiB at a time
        if ((i & takeEveryMask) === takeEveryMask) sink += writer.take().length;
      }
      sink += writer.take().length;
    })
    .add('basic.ack method encode (FrameWriter.method)', () => {
      for (let i = 0; i < batch; i++) writer.method(1, { id: Method.BasicAck, args: { deliveryTag: i + 1, multiple: false } });
      sink += writer.take().length;
    })
    .add('field table decode (5 entries, nested)', () => {
      for (let i = 0; i < batch; i++) sink += decodeTable(headersBytes, 0, headersBytes.length).next;
    })
    .add('field table encode (5 entries, nested)', () => {
      for (let i = 0; i < batch; i++) sink += encodeTable(headers).length;
    })
    .add('properties decode (7 properties with headers)', () => {
      for (let i = 0; i < batch; i++) sink += decodeProperties(propertyBytes).deliveryMode ?? 0;
    })
    .add('properties encode (7 properties with headers)', () => {
      for (let i = 0; i < batch; i++) sink += encodeProperties(properties).length;
    })
    .add('peekHeaders (headers table only)', () => {
      for (let i = 0; i < batch; i++) sink += peekHeaders(propertyBytes) === undefined ? 0 : 1;
    });

  await bench.run();
  if (sink === -1) console.log(sink);

  const opsPerIteration: Record<string, number> = { 'frame parse (publish: method+header+256 B body)': batch * 3 };
  return bench.tasks.map((task) => {
    const r = task.result;
    const ops = opsPerIteration[task.name] ?? batch;
    if (r.state !== 'completed') return { name: task.name, opsPerSec: 0, note: `state ${r.state}` };
    const note = task.name.startsWith('frame parse') ? 'per frame, 64 KiB-ish chunks, zero-copy views' : 'per operation';
    return { name: task.name, opsPerSec: Math.round((ops * 1000) / r.period), note };
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await codecBench(Number(process.env['BENCH_TIME_MS'] ?? 500));
  for (const r of results) console.log(`${r.opsPerSec.toLocaleString('en-US').padStart(14)} ops/s  ${r.name}`);
}
