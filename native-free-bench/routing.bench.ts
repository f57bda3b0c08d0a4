// Routing micro-benchmarks: each matcher at 10 / 1k / 100k bindings, and the exchange graph's
// route() for the common cases (default exchange, direct with a few bindings).
//
// Each task routes a batch of precomputed keys so one timed sample is well above the timer's
// resolution; opsPerSec is routes (messages) per second.
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import type { FieldTable, FieldValue } from '../src/amqp/field-table.js';
import { DirectMatcher } from '../src/routing/direct-matcher.js';
import { ExchangeGraph } from '../src/routing/exchange-graph.js';
import { FanoutMatcher } from '../src/routing/fanout-matcher.js';
import { HeadersMatcher } from '../src/routing/headers-matcher.js';
import { TopicMatcher } from '../src/routing/topic-matcher.js';
import type { Matcher, MatcherBinding } from '../src/routing/types.js';

export interface BenchFigure {
  name: string;
  opsPerSec: number;
  note?: string;
}

interface BenchBinding extends MatcherBinding {
  readonly queue: string;
}

const SIZES = [10, 1_000, 100_000] as const;
/** Routes per timed sample. */
const BATCH = 1_000;
const S = (value: string): FieldValue => ({ type: 'S', value });

/** Deterministic pseudo-random numbers, so every run measures the same keys. */
function lcg(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
}

function topicPattern(i: number): string {
  // A realistic mix: mostly exact-ish keys with one '*', some '#' tails and heads.
  switch (i % 10) {
    case 0: return `s${i % 997}.#`;
    case 1: return `#.e${i % 101}`;
    case 2: return `s${i % 997}.*.e${i % 101}`;
    default: return `s${i % 997}.r${i % 89}.e${i}`;
  }
}

function headersArgs(i: number): FieldTable {
  if (i % 10 === 0) return { 'x-match': S('any'), region: S(`r${i % 89}`), urgent: { type: 'V', value: null } };
  return { 'x-match': S('all'), tenant: S(`t${i}`), kind: S(`k${i % 7}`), 'x-note': S('ignored') };
}

function fill(matcher: Matcher<BenchBinding>, size: number, key: (i: number) => string, args: (i: number) => FieldTable): void {
  for (let i = 0; i < size; i++) matcher.add({ queue: `q${i}`, routingKey: key(i), arguments: args(i) });
}

export async function routingBench(): Promise<BenchFigure[]> {
  const bench = new Bench({ time: 400, warmupTime: 100 });
  const notes = new Map<string, string>();
  let visited = 0;
  const visit = (b: BenchBinding): void => {
    visited += b.queue.length;
  };
  const noHeaders = (): FieldTable | undefined => undefined;

  for (const size of SIZES) {
    const random = lcg(size);
    const direct = new DirectMatcher<BenchBinding>();
    fill(direct, size, (i) => `key-${i}`, () => ({}));
    const directKeys = Array.from({ length: BATCH }, () => `key-${random(size)}`);
    bench.add(`direct ${size} bindings`, () => {
      for (let i = 0; i < BATCH; i++) direct.match(directKeys[i] ?? '', noHeaders, visit);
    });

    if (size <= 1_000) {
      const fanout = new FanoutMatcher<BenchBinding>();
      fill(fanout, size, () => '', () => ({}));
      bench.add(`fanout ${size} bindings`, () => {
        for (let i = 0; i < BATCH; i++) fanout.match('', noHeaders, visit);
      });
      notes.set(`fanout ${size} bindings`, `each route visits all ${size} bindings`);
    }

    const topic = new TopicMatcher<BenchBinding>();
    fill(topic, size, topicPattern, () => ({}));
    const topicKeys = Array.from({ length: BATCH }, () => {
      const i = random(size);
      return random(2) === 0 ? `s${i % 997}.r${i % 89}.e${i}` : `s${random(997)}.x.e${random(101)}`;
    });
    let topicMatched = 0;
    const countTopic = (): void => {
      topicMatched++;
    };
    for (const key of topicKeys) topic.match(key, noHeaders, countTopic);
    notes.set(`topic ${size} bindings`, `keys of 3 words, ${(topicMatched / BATCH).toFixed(1)} bindings matched per route`);
    bench.add(`topic ${size} bindings`, () => {
      for (let i = 0; i < BATCH; i++) topic.match(topicKeys[i] ?? '', noHeaders, visit);
    });

    const headers = new HeadersMatcher<BenchBinding>();
    fill(headers, size, () => '', headersArgs);
    const messages: FieldTable[] = Array.from({ length: BATCH }, () => {
      const i = random(size);
      return { tenant: S(`t${i}`), kind: S(`k${i % 7}`), region: S(`r${random(89)}`), 'content-lang': S('en') };
    });
    let headersMatched = 0;
    for (const message of messages) headers.match('', () => message, () => headersMatched++);
    notes.set(`headers ${size} bindings`, `4 headers per message, ${(headersMatched / BATCH).toFixed(1)} bindings matched per route`);
    bench.add(`headers ${size} bindings`, () => {
      for (let i = 0; i < BATCH; i++) {
        const message = messages[i];
        headers.match('', () => message, visit);
      }
    });
  }

  // The exchange graph's route() for the front's common cases.
  const graph = new ExchangeGraph();
  for (let i = 0; i < 4; i++) {
    graph.bind({ source: 'amq.direct', destination: `q${i}`, destinationKind: 'queue', routingKey: `key-${i % 2}`, arguments: {} });
  }
  const queues = new Set(Array.from({ length: 100 }, (_, i) => `q${i}`));
  const queueExists = (q: string): boolean => queues.has(q);
  const out: string[] = [];
  bench.add('graph route: default exchange', () => {
    for (let i = 0; i < BATCH; i++) {
      out.length = 0;
      graph.route('', 'q42', noHeaders, queueExists, out);
    }
  });
  bench.add('graph route: direct, 4 bindings (2 queues matched)', () => {
    for (let i = 0; i < BATCH; i++) {
      out.length = 0;
      graph.route('amq.direct', 'key-1', noHeaders, queueExists, out);
    }
  });

  await bench.run();
  if (visited < 0) throw new Error('unreachable: keeps the visitor observable');
  const figures: BenchFigure[] = [];
  for (const task of bench.tasks) {
    const result = task.result;
    if (result.state !== 'completed') throw new Error(`bench task ${task.name} ended ${result.state}`);
    const figure: BenchFigure = { name: task.name, opsPerSec: Math.round((BATCH * 1000) / result.period) };
    const note = notes.get(task.name);
    if (note !== undefined) figure.note = note;
    figures.push(figure);
  }
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const { name, opsPerSec, note } of await routingBench()) {
    console.log(`${name.padEnd(52)} ${opsPerSec.toLocaleString('en-US').padStart(14)} routes/s${note === undefined ? '' : `  (${note})`}`);
  }
}
