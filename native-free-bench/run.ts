/**
 * `npm run bench:micro`: the hot-path micro-benchmarks (tinybench, no native addon) in one
 * table — rings, AMQP codec, routing, protobuf batches, log records. Figures vary by 2×
 * between runs on a shared 2-core machine; compare rows, not runs.
 * `--json` prints the results as JSON; `--only ring,codec` runs a subset.
 */
import { parseArgs } from 'node:util';
import { codecBench } from './codec.bench.js';
import { protobufBench } from './protobuf.bench.js';
import { routingBench } from './routing.bench.js';
import { storeBench } from './store.bench.js';

interface Figure {
  name: string;
  opsPerSec: number;
  note?: string;
}

type Suite = { name: string; run: () => Promise<Figure[]> };

async function ringSuite(): Promise<Figure[]> {
  // Imported lazily: the ring bench spawns a worker thread.
  const m = (await import('./ring.bench.js')) as { ringBench: () => Promise<Figure[]> };
  return m.ringBench();
}

const suites: Suite[] = [
  { name: 'ring', run: ringSuite },
  { name: 'codec', run: () => codecBench() },
  { name: 'routing', run: () => routingBench() },
  { name: 'protobuf', run: () => protobufBench() },
  { name: 'store', run: () => storeBench() },
];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, only: { type: 'string' } } });
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((n) => !suites.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`bench:micro: unknown suite(s) ${unknown.join(', ')}; known: ${suites.map((s) => s.name).join(', ')}\n`);
    process.exit(2);
  }
  const results: Record<string, Figure[]> = {};
  for (const s of suites) {
    if (only !== undefined && !only.includes(s.name)) continue;
    if (values.json !== true) process.stdout.write(`\n## ${s.name}\n`);
    const figures = await s.run();
    results[s.name] = figures;
    if (values.json !== true) {
      for (const f of figures) {
        process.stdout.write(`${Math.round(f.opsPerSec).toLocaleString('en-US').padStart(15)} ops/s  ${f.name}${f.note !== undefined ? `  (${f.note})` : ''}\n`);
      }
    }
  }
  if (values.json === true) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
