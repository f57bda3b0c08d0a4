import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BenchUsageError, parseBenchArgs, parseQueueArgs, parseSize } from '../../src/bench/parse-args.js';
import type { BenchOptions } from '../../src/bench/options.js';

function parse(argv: string[], cores = 2): BenchOptions {
  const command = parseBenchArgs(argv, cores);
  assert.equal(command.kind, 'run');
  if (command.kind !== 'run') throw new Error('unreachable');
  return command.options;
}

function rejects(argv: string[], message: RegExp): void {
  assert.throws(() => parseBenchArgs(argv, 2), (error: unknown) => error instanceof BenchUsageError && message.test(error.message));
}

describe('bench argument parsing', () => {
  it('defaults to the first form of the issue: 1 → 1, 256 B, manual acks, prefetch 1000, 10 s', () => {
    const options = parse([]);
    assert.deepEqual(options.urls, ['amqp://guest:guest@localhost:5672']);
    assert.equal(options.compareUrls, undefined);
    assert.deepEqual(options.queueArgs, {});
    assert.equal(options.producers, 1);
    assert.equal(options.consumers, 1);
    assert.equal(options.queueCount, 1);
    assert.deepEqual(options.size, { minBytes: 256, maxBytes: 256 });
    assert.equal(options.autoAck, false);
    assert.equal(options.nagle, false, 'TCP_NODELAY by default, as PerfTest');
    assert.equal(options.prefetchCount, 1000);
    assert.equal(options.multiAckEvery, 1);
    assert.equal(options.durationSeconds, 10);
    assert.equal(options.messagesPerProducer, undefined);
    assert.equal(options.ratePerProducer, undefined);
    assert.equal(options.confirmWindow, undefined);
    assert.equal(options.persistent, false);
    assert.equal(options.exchange, '');
    assert.equal(options.threads, 2);
    assert.equal(options.rounds, 1);
    assert.equal(options.warmupSeconds, 0, 'no warm-up unless asked');
    assert.match(options.queuePrefix, /^warren-bench-[0-9a-f]{6}$/);
  });

  it('reads long flags', () => {
    const options = parse([
      '--url', 'amqp://u:p@h:5673/vh', '--compare', 'amqps://other', '--rounds', '5', '--producers', '4', '--consumers', '3',
      '--queues', '4', '--size', '100-1000', '--rate', '250.5', '--confirm', '64', '--persistent', '--prefetch', '50',
      '--multi-ack', '10', '--duration', '2.5', '--pmessages', '1000', '--exchange-type', 'topic', '--routing-key', 'a.b',
      '--binding-key', 'a.*', '--queue-args', 'x-queue-type=quorum,x-max-length=1000', '--queue-prefix', 'qp', '--json',
      '--hgrm', 'out', '--plot', 'p.svg', '--threads', '3', '--keep-queues',
    ]);
    assert.deepEqual(options.urls, ['amqp://u:p@h:5673/vh']);
    assert.deepEqual(options.compareUrls, ['amqps://other']);
    assert.equal(options.rounds, 5);
    assert.equal(options.producers, 4);
    assert.equal(options.consumers, 3);
    assert.equal(options.queueCount, 4);
    assert.deepEqual(options.size, { minBytes: 100, maxBytes: 1000 });
    assert.equal(options.ratePerProducer, 250.5);
    assert.equal(options.confirmWindow, 64);
    assert.equal(options.persistent, true);
    assert.equal(options.prefetchCount, 50);
    assert.equal(options.multiAckEvery, 10);
    assert.equal(options.durationSeconds, 2.5);
    assert.equal(options.messagesPerProducer, 1000);
    assert.equal(options.exchangeType, 'topic');
    assert.equal(options.exchange, 'qp-exchange');
    assert.equal(options.routingKey, 'a.b');
    assert.equal(options.bindingKey, 'a.*');
    assert.deepEqual(options.queueArgs, { 'x-queue-type': 'quorum', 'x-max-length': 1000 });
    assert.equal(options.json, true);
    assert.equal(options.hgrmDir, 'out');
    assert.equal(options.plotFile, 'p.svg');
    assert.equal(options.threads, 3);
    assert.equal(options.keepQueues, true);
  });

  it('reads PerfTest-style short flags', () => {
    const options = parse(['-u', 'amqp://h', '-x', '2', '-y', '5', '-s', '64', '-r', '100', '-c', '10', '-q', '20', '-A', '5', '-z', '3', '-C', '7']);
    assert.deepEqual(
      [options.producers, options.consumers, options.size.minBytes, options.ratePerProducer, options.confirmWindow, options.prefetchCount, options.multiAckEvery, options.durationSeconds, options.messagesPerProducer],
      [2, 5, 64, 100, 10, 20, 5, 3, 7],
    );
    assert.equal(parse(['-a']).autoAck, true);
    assert.equal(parse(['--nagle']).nagle, true);
  });

  it('runs only --pmessages when that is the only length given', () => {
    const options = parse(['--pmessages', '500']);
    assert.equal(options.durationSeconds, undefined);
    assert.equal(options.messagesPerProducer, 500);
  });

  it('caps default threads at the client count and the cores', () => {
    assert.equal(parse([], 8).threads, 2);
    assert.equal(parse(['-x', '4', '-y', '4'], 8).threads, 8);
    assert.equal(parse(['-x', '4', '-y', '4'], 2).threads, 2);
    assert.equal(parse(['-x', '1', '-y', '0'], 2).threads, 1);
  });

  it('returns help for -h and --help', () => {
    assert.deepEqual(parseBenchArgs(['--help']), { kind: 'help' });
    assert.deepEqual(parseBenchArgs(['-x', '3', '-h']), { kind: 'help' });
  });

  it('rejects unknown flags, stray arguments and missing values', () => {
    rejects(['--bogus'], /^unknown flag '--bogus'$/);
    rejects(['-Z'], /^unknown flag '-Z'$/);
    rejects(['extra'], /unexpected argument 'extra'/);
    rejects(['--producers'], /--producers/);
  });

  it('rejects bad numbers naming flag, value and range', () => {
    rejects(['--producers', '-1'], /--producers/);
    rejects(['--producers', 'two'], /--producers expects a whole number, got 'two'/);
    rejects(['--consumers', '1001'], /--consumers 1001 is out of range 0\.\.1000/);
    rejects(['-x', '0', '-y', '0'], /nothing to run/);
    rejects(['-x', '600', '-y', '600'], /more than 1000/);
    rejects(['--queues', '0'], /--queues 0 is out of range 1\.\.1000/);
    rejects(['--rate', '0'], /--rate must be greater than 0/);
    rejects(['--rate', 'fast'], /--rate expects a positive number, got 'fast'/);
    rejects(['--confirm', '0'], /--confirm 0 is out of range/);
    rejects(['--duration', '-3'], /--duration/);
    rejects(['--pmessages', '0'], /--pmessages 0 is out of range/);
    rejects(['--prefetch', '70000'], /--prefetch 70000 is out of range 0\.\.65535/);
    rejects(['--threads', '3'], /--threads 3 is out of range 1\.\.2/);
    rejects(['--rounds', '0'], /--rounds 0 is out of range/);
    rejects(['--warmup', '-1'], /--warmup/);
    rejects(['--warmup=-1'], /--warmup expects a number of seconds \(0 or more\), got '-1'/);
    rejects(['--warmup', 'soon'], /--warmup expects a number of seconds/);
    rejects(['--warmup', '3601'], /--warmup must be at most 3600 seconds, got '3601'/);
  });

  it('reads --tls-ca at once: a missing file or one without a certificate is a usage error', () => {
    const ca = new URL('../../../test/fixtures/tls/ca.pem', import.meta.url).pathname;
    assert.match(parse(['--tls-ca', ca]).tlsCa ?? '', /-----BEGIN CERTIFICATE-----/);
    assert.equal(parse([]).tlsCa, undefined);
    rejects(['--tls-ca', '/nonexistent/ca.pem'], /--tls-ca \/nonexistent\/ca\.pem: ENOENT/);
    rejects(['--tls-ca', new URL('../../../test/fixtures/tls/README.md', import.meta.url).pathname], /holds no PEM certificate/);
  });

  it('takes --warmup in seconds, 0 meaning none', () => {
    assert.equal(parse(['--warmup', '5']).warmupSeconds, 5);
    assert.equal(parse(['--warmup', '0.5']).warmupSeconds, 0.5);
    assert.equal(parse(['--warmup', '0']).warmupSeconds, 0);
  });

  it('rejects bad URLs', () => {
    rejects(['--url', 'localhost:5672'], /--url 'localhost:5672' must start with amqp:\/\/ or amqps:\/\//);
    rejects(['--url', 'no url'], /--url 'no url' is not a URL/);
    rejects(['--url', 'http://localhost'], /must start with amqp:\/\/ or amqps:\/\//);
    rejects(['--compare', 'nope'], /--compare 'nope' is not a URL/);
  });

  it('takes several URLs, repeated or comma-separated, for both brokers', () => {
    const options = parse(['--url', 'amqp://n1:5672,amqp://n2:5673', '-u', 'amqp://n3:5674', '--compare', 'amqp://r1:5781, amqp://r2:5782', '--compare', 'amqp://r3:5783']);
    assert.deepEqual(options.urls, ['amqp://n1:5672', 'amqp://n2:5673', 'amqp://n3:5674']);
    assert.deepEqual(options.compareUrls, ['amqp://r1:5781', 'amqp://r2:5782', 'amqp://r3:5783']);
  });

  it('rejects URL lists with holes, repeats, bad entries or too many nodes', () => {
    rejects(['--url', 'amqp://a,,amqp://b'], /--url has an empty entry in 'amqp:\/\/a,,amqp:\/\/b'/);
    rejects(['--url', 'amqp://a,'], /--url has an empty entry/);
    rejects(['--url', 'amqp://a', '--url', 'amqp://a'], /--url lists 'amqp:\/\/a' twice/);
    rejects(['--compare', 'amqp://a,http://b'], /--compare 'http:\/\/b' must start with amqp:\/\//);
    const seventeen = Array.from({ length: 17 }, (_, index) => `amqp://n${index}`).join(',');
    rejects(['--url', seventeen], /--url lists 17 URLs, more than 16/);
  });

  it('declares quorum or classic queues with --queue-type', () => {
    assert.deepEqual(parse(['--queue-type', 'quorum']).queueArgs, { 'x-queue-type': 'quorum' });
    assert.deepEqual(parse(['--queue-type', 'classic']).queueArgs, { 'x-queue-type': 'classic' });
    assert.deepEqual(parse(['--queue-type', 'quorum', '--queue-args', 'x-quorum-initial-group-size=3']).queueArgs, {
      'x-quorum-initial-group-size': 3,
      'x-queue-type': 'quorum',
    });
    assert.deepEqual(parse(['--queue-type', 'quorum', '--queue-args', 'x-queue-type=quorum']).queueArgs, { 'x-queue-type': 'quorum' });
  });

  it('rejects unknown queue types and a --queue-type that contradicts --queue-args', () => {
    rejects(['--queue-type', 'stream'], /--queue-type 'stream' is not one of classic, quorum/);
    rejects(['--queue-type', 'Quorum'], /--queue-type 'Quorum' is not one of/);
    rejects(['--queue-type', 'quorum', '--queue-args', 'x-queue-type=classic'], /--queue-type quorum contradicts --queue-args x-queue-type=classic/);
  });

  it('rejects acking combinations that cannot work', () => {
    rejects(['--multi-ack', '2000'], /--multi-ack 2000 is larger than --prefetch 1000: consumers would stall/);
    rejects(['--autoack', '--multi-ack', '5'], /exclude each other/);
    assert.equal(parse(['--prefetch', '0', '--multi-ack', '5000']).multiAckEvery, 5000);
  });

  it('rejects routing that cannot work', () => {
    rejects(['--exchange-type', 'xyz'], /--exchange-type 'xyz' is not one of direct, fanout, topic, headers/);
    rejects(['--exchange', '', '--exchange-type', 'fanout'], /default exchange .* is direct/);
    rejects(['--binding-key', 'k'], /--binding-key needs a named --exchange/);
    rejects(['--producers', '0', '--pmessages', '5'], /--pmessages needs producers/);
  });

  it('rejects bad output targets', () => {
    rejects(['--plot', 'latency.png'], /must end in \.svg, got 'latency\.png'/);
    rejects(['--hgrm', ''], /--hgrm needs a directory/);
  });
});

describe('--size', () => {
  it('takes a fixed size or a range', () => {
    assert.deepEqual(parseSize('8'), { minBytes: 8, maxBytes: 8 });
    assert.deepEqual(parseSize('100-1000'), { minBytes: 100, maxBytes: 1000 });
  });

  it('rejects sizes that cannot carry the timestamp, inverted ranges and junk', () => {
    assert.throws(() => parseSize('7'), /below 8 bytes/);
    assert.throws(() => parseSize('1000-100'), /minimum above its maximum/);
    assert.throws(() => parseSize('1k'), /expects BYTES or MIN-MAX, got '1k'/);
    assert.throws(() => parseSize('100000000'), /above the 67108864-byte maximum/);
  });
});

describe('--queue-args', () => {
  it('types integers and booleans and keeps the rest as strings', () => {
    assert.deepEqual(parseQueueArgs('x-queue-type=quorum, x-max-length=1000,x-single-active-consumer=true,x-overflow=reject-publish,x-message-ttl=-1'), {
      'x-queue-type': 'quorum',
      'x-max-length': 1000,
      'x-single-active-consumer': true,
      'x-overflow': 'reject-publish',
      'x-message-ttl': -1,
    });
    assert.deepEqual(parseQueueArgs(''), {});
  });

  it('rejects entries without a key or =, and repeated keys', () => {
    assert.throws(() => parseQueueArgs('x-queue-type'), /'x-queue-type' is not KEY=VALUE/);
    assert.throws(() => parseQueueArgs('=5'), /'=5' is not KEY=VALUE/);
    assert.throws(() => parseQueueArgs('a=1,a=2'), /sets 'a' twice/);
  });
});
