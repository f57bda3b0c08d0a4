/**
 * Prometheus /metrics: scraped and parsed with a strict parser of the text exposition format
 * (0.0.4): every sample belongs to a family declared by # HELP and # TYPE, names and labels
 * are well-formed, values are numbers, histogram buckets are cumulative and end at +Inf with
 * the _count. Then the values must say what the node is doing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { waitFor } from '../helpers/broker.js';
import { startMgmtBroker, type MgmtBroker } from './mgmt-kit.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `a number in: ${line}`);
  return Number(text);
}

/** Label set `{a="x",b="y\"z"}` starting at text[0] === '{'; returns the labels and the rest. */
function parseLabels(text: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const eq = text.indexOf('=', i);
    assert.ok(eq > i, `label name in: ${line}`);
    const name = text.slice(i, eq);
    assert.match(name, labelName, `label name '${name}' in: ${line}`);
    assert.equal(text[eq + 1], '"', `quoted label value in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      const c = text[j];
      assert.ok(c !== undefined, `unterminated label value in: ${line}`);
      if (c === '\\') {
        const next = text[j + 1];
        assert.ok(next === '\\' || next === '"' || next === 'n', `escape \\${String(next)} in: ${line}`);
        value += next === 'n' ? '\n' : next;
        j += 2;
      } else if (c === '"') {
        j++;
        break;
      } else {
        value += c;
        j++;
      }
    }
    assert.ok(!(name in labels), `duplicate label ${name} in: ${line}`);
    labels[name] = value;
    if (text[j] === ',') j++;
    else assert.equal(text[j], '}', `',' or '}' after a label in: ${line}`);
    i = j;
  }
  return { labels, rest: text.slice(i + 1) };
}

function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sampleName: string): Family | undefined => {
    const exact = families.get(sampleName);
    if (exact !== undefined) return exact;
    const m = /^(.*)_(bucket|sum|count)$/.exec(sampleName);
    const f = m === null ? undefined : families.get(m[1] ?? '');
    return f !== undefined && (f.type === 'histogram' || f.type === 'summary') ? f : undefined;
  };
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, name = '', help = ''] = /^# HELP (\S+) ?(.*)$/.exec(line) ?? [];
      assert.match(name, metricName, line);
      assert.ok(!families.has(name), `HELP for ${name} given twice`);
      families.set(name, { name, help, type: 'untyped', samples: [] });
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name = '', type = ''] = /^# TYPE (\S+) (\S+)$/.exec(line) ?? [];
      const f = families.get(name);
      assert.ok(f !== undefined, `TYPE before HELP for ${name}`);
      assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type), line);
      assert.equal(f.samples.length, 0, `TYPE after samples for ${name}`);
      f.type = type as Family['type'];
      continue;
    }
    assert.ok(!line.startsWith('#'), `unknown comment line: ${line}`);
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    assert.ok(nameMatch !== null, `sample name in: ${line}`);
    const name = nameMatch[0];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(' ');
    assert.ok(rest.startsWith(' ') && (parts.length === 1 || parts.length === 2), `' value [timestamp]' in: ${line}`);
    const value = parseValue(parts[0] ?? '', line);
    const f = familyOf(name);
    assert.ok(f !== undefined, `sample ${name} belongs to no declared family`);
    f.samples.push({ name, labels, value });
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
    const count = samples.find((s) => s.name === `${f.name}_count`);
    assert.ok(samples.some((s) => s.name === `${f.name}_sum`), `${f.name}${key} has _sum`);
    assert.ok(count !== undefined, `${f.name}${key} has _count`);
    assert.ok(buckets.length > 0, `${f.name}${key} has buckets`);
    let prevLe = -Infinity;
    let prevCount = 0;
    for (const b of buckets) {
      const le = b.labels['le'];
      assert.ok(le !== undefined, `${f.name} bucket without le`);
      const bound = parseValue(le, le);
      assert.ok(bound > prevLe, `${f.name}${key} buckets in increasing le order`);
      assert.ok(b.value >= prevCount, `${f.name}${key} buckets are cumulative (${le})`);
      prevLe = bound;
      prevCount = b.value;
    }
    assert.equal(prevLe, Infinity, `${f.name}${key} ends with le="+Inf"`);
    assert.equal(prevCount, count.value, `${f.name}${key}: +Inf bucket equals _count`);
  }
}

describe('prometheus metrics', () => {
  let m: MgmtBroker;
  before(async () => {
    m = await startMgmtBroker();
  });
  after(async () => {
    await m.stop();
  });

  async function scrape(): Promise<Map<string, Family>> {
    const res = await fetch(m.metrics);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  }

  const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined => {
    const f = fams.get(name) ?? [...fams.values()].find((x) => x.samples.some((s) => s.name === name));
    return f?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  };

  test('the exposition parses strictly, with RabbitMQ names and warren gauges', async () => {
    const fams = await scrape();
    for (const name of [
      'rabbitmq_queue_messages_ready',
      'rabbitmq_queue_messages_unacked',
      'rabbitmq_queue_consumers',
      'rabbitmq_connections',
      'rabbitmq_channels',
      'rabbitmq_global_messages_received_total',
      'rabbitmq_global_messages_delivered_total',
      'rabbitmq_global_messages_acknowledged_total',
      'rabbitmq_process_resident_memory_bytes',
      'warren_shards',
      'warren_ring_occupancy_bytes',
      'warren_ring_capacity_bytes',
      'warren_latency_seconds',
    ]) {
      assert.ok(fams.has(name), `family ${name}`);
    }
    assert.equal(fams.get('rabbitmq_global_messages_received_total')?.type, 'counter');
    assert.equal(fams.get('warren_latency_seconds')?.type, 'histogram');
    assert.equal(value(fams, 'warren_shards'), 2);
    assert.ok((value(fams, 'rabbitmq_process_resident_memory_bytes') ?? 0) > 10_000_000);
    // Four rings for two shards: one each way.
    const rings = fams.get('warren_ring_capacity_bytes')?.samples ?? [];
    assert.equal(rings.length, 4);
    assert.ok(rings.every((s) => s.value > 0));
  });

  test('values follow traffic: queue depth, consumers, connections, global counters, fsync latency', async () => {
    const conn = await amqp.connect(m.broker.url);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('prom-q', { durable: true });
    for (let i = 0; i < 5; i++) ch.sendToQueue('prom-q', Buffer.from(`p${i}`), { persistent: true });
    await ch.waitForConfirms();
    let fams = await scrape();
    assert.equal(value(fams, 'rabbitmq_queue_messages_ready', { vhost: '/', queue: 'prom-q' }), 5);
    assert.equal(value(fams, 'rabbitmq_connections'), 1);
    assert.equal(value(fams, 'rabbitmq_channels'), 1);
    assert.ok((value(fams, 'rabbitmq_global_messages_received_total') ?? 0) >= 5);

    const cch = await conn.createChannel();
    await cch.prefetch(2);
    await cch.consume('prom-q', () => {}, { consumerTag: 'holder' });
    await waitFor(async () => {
      fams = await scrape();
      return value(fams, 'rabbitmq_queue_messages_unacked', { queue: 'prom-q' }) === 2;
    }, 'two unacked deliveries in the metrics');
    assert.equal(value(fams, 'rabbitmq_queue_consumers', { queue: 'prom-q' }), 1);
    assert.equal(value(fams, 'rabbitmq_queue_messages_ready', { queue: 'prom-q' }), 3);
    assert.ok((value(fams, 'rabbitmq_global_messages_delivered_total') ?? 0) >= 2);
    // Persistent messages in a durable queue were fsynced: the fsync histogram has samples.
    assert.ok((value(fams, 'warren_latency_seconds_count', { stage: 'fsync' }) ?? 0) > 0);
    assert.ok((value(fams, 'warren_latency_seconds_count', { stage: 'publish_to_confirm' }) ?? 0) >= 5);
    await conn.close();
    await waitFor(async () => value(await scrape(), 'rabbitmq_connections') === 0, 'the connection to leave the metrics');
  });

  test('only GET /metrics is served', async () => {
    assert.equal((await fetch(m.metrics.replace('/metrics', '/other'))).status, 404);
    assert.equal((await fetch(m.metrics, { method: 'POST' })).status, 405);
  });
});
