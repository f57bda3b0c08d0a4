// Short real runs against a real broker: warren on port 0 by default, or any AMQP 0-9-1
// broker given as BENCH_TEST_URL (e.g. RabbitMQ) to check the bench itself against a reference.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBench } from '../../src/bench/bench-main.js';
import type { BenchJson } from '../../src/bench/report-json.js';
import { parseHgrm } from '../../src/bench/hgrm.js';

interface Target {
  readonly url: string;
  stop(): Promise<unknown>;
}

async function startTarget(): Promise<Target> {
  const url = process.env.BENCH_TEST_URL;
  if (url !== undefined && url !== '') return { url, stop: async () => undefined };
  const { startBroker } = await import('../helpers/broker.js');
  return startBroker();
}

async function bench(argv: string[]): Promise<{ code: number; json: BenchJson; text: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runBench([...argv, '--json'], { stdout: (chunk) => (stdout += chunk), stderr: (chunk) => (stderr += chunk) });
  assert.ok(stdout.startsWith('{'), `JSON on stdout, got: ${stdout.slice(0, 200)}\nstderr: ${stderr}`);
  return { code, json: JSON.parse(stdout) as BenchJson, text: stderr };
}

describe('bench against a real broker', () => {
  let target: Target;
  let outDir: string;
  before(async () => {
    target = await startTarget();
    outDir = await mkdtemp(join(tmpdir(), 'warren-bench-test-'));
  });
  after(async () => {
    await target.stop();
    await rm(outDir, { recursive: true, force: true });
  });

  it('1 → 1 with confirms: every message published is confirmed and consumed', async () => {
    const hgrmDir = join(outDir, 'hgrm');
    const plotFile = join(outDir, 'latency.svg');
    const { code, json, text } = await bench(['--url', target.url, '--pmessages', '2000', '--confirm', '50', '--hgrm', hgrmDir, '--plot', plotFile]);
    const run = json.runs[0];
    assert.ok(run !== undefined, text);
    assert.deepEqual(run.errors, []);
    assert.equal(code, 0, text);
    assert.equal(run.accounting.published, 2000);
    assert.equal(run.accounting.routed, 2000);
    assert.equal(run.accounting.consumed + (run.accounting.inQueues ?? Number.NaN), 2000);
    assert.equal(run.accounting.balanced, true);
    assert.equal(run.confirmed + run.nacked, 2000);
    assert.equal(run.unconfirmed, 0);
    assert.equal(run.latencyMicros.confirm.count, 2000);
    assert.equal(run.latencyMicros.deliver.count, run.accounting.consumed);
    assert.ok(run.latencyMicros.deliver.p50Micros > 0 && run.latencyMicros.deliver.p50Micros <= run.latencyMicros.deliver.p99Micros);
    assert.equal(run.threads, 2);
    assert.equal(run.connections, 3);
    assert.ok(run.generatorCpu.percentOfOneCore > 0, 'the generator used some CPU');
    assert.equal(run.generatorCpu.threadBusy.length, 2);
    assert.ok(run.generatorCpu.threadBusy.every((busy) => busy > 0 && busy <= 1));
    assert.match(text, /bench CPU +\d+% of one core = \d+% of the \d+-core machine/);
    assert.deepEqual((await readdir(hgrmDir)).sort(), ['publish-confirm.hgrm', 'publish-deliver.hgrm']);
    const deliver = parseHgrm(await readFile(join(hgrmDir, 'publish-deliver.hgrm'), 'utf8'));
    assert.equal(deliver.totalCount, run.accounting.consumed);
    const svg = await readFile(plotFile, 'utf8');
    assert.equal([...svg.matchAll(/<polyline /g)].length, 2);
  });

  it('producers only, at a fixed rate: what was published is in the queue, never above the schedule', async () => {
    const { code, json, text } = await bench(['--url', target.url, '-x', '1', '-y', '0', '--rate', '400', '--duration', '1']);
    const run = json.runs[0];
    assert.ok(run !== undefined, text);
    assert.equal(code, 0, text);
    assert.equal(run.accounting.consumed, 0);
    assert.ok(run.accounting.published > 0);
    assert.equal(run.accounting.inQueues, run.accounting.published);
    // One message is due at t=0, then one every 2.5 ms: the schedule caps the count.
    assert.ok(run.accounting.published <= Math.floor(400 * run.windowSeconds) + 1, `${run.accounting.published} in ${run.windowSeconds} s`);
  });

  it('over AMQPS with --tls-ca: a TLS listener with its own CA takes the same workload', async () => {
    const { startBroker } = await import('../helpers/broker.js');
    const tls = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
    const tlsBroker = await startBroker({ args: ['--tls-port', '0', '--tls-cert', `${tls}server.pem`, '--tls-key', `${tls}server.key`] });
    try {
      const amqps = (await tlsBroker.waitForLog(/AMQPS \(TLS\) listener at (amqps:\/\/\S+),/))[1] ?? '';
      const { code, json, text } = await bench(['--url', amqps.replace('amqps://', 'amqps://guest:guest@'), '--tls-ca', `${tls}ca.pem`, '--pmessages', '300', '--confirm', '50']);
      assert.equal(code, 0, text);
      const run = json.runs[0];
      assert.ok(run !== undefined, text);
      assert.equal(run.accounting.published, 300);
      assert.equal(run.accounting.balanced, true);
      assert.equal(json.workload.tlsCa, '(PEM given with --tls-ca)');
    } finally {
      await tlsBroker.stop();
    }
  });

  it('--warmup runs the workload first and counts only the rounds after it', async () => {
    const { code, json, text } = await bench(['--url', target.url, '--warmup', '0.5', '--pmessages', '300', '--confirm', '50']);
    assert.equal(code, 0, text);
    assert.equal(json.runs.length, 1, 'the warm-up is not a reported run');
    const run = json.runs[0];
    assert.ok(run !== undefined, text);
    assert.equal(run.round, 1);
    assert.equal(run.accounting.published, 300, 'the warm-up ran by time, the round by --pmessages');
    assert.equal(run.accounting.inQueuesBefore, 0, 'the warm-up left nothing behind');
    assert.equal(run.latencyMicros.confirm.count, 300, 'no warm-up sample in the histograms');
    assert.equal(json.workload.warmupSeconds, 0.5);
    assert.match(text, /after a 0\.5 s warm-up per broker \(not counted\)/);
    assert.match(text, /^A warm-up: \S+ \S+, \d+\.\d s, [\d,]+ msg\/s consumed, accounting ok \(not counted\)$/m);
  });

  it('fanout to 2 queues, 2 → 2, multi-ack and mixed sizes: consumed + left = published × 2', async () => {
    const { code, json, text } = await bench([
      '--url', target.url, '-x', '2', '-y', '2', '--queues', '2', '--exchange-type', 'fanout',
      '--prefetch', '10', '--multi-ack', '7', '--size', '8-2000', '--pmessages', '700',
    ]);
    const run = json.runs[0];
    assert.ok(run !== undefined, text);
    assert.deepEqual(run.errors, []);
    assert.equal(code, 0, text);
    assert.equal(run.accounting.published, 1400);
    assert.equal(run.accounting.routed, 2800);
    assert.equal(run.accounting.consumed + (run.accounting.inQueues ?? Number.NaN), 2800);
    assert.equal(run.connections, 5);
  });
});
