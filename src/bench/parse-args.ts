import { readFileSync } from 'node:fs';
// Command line → BenchOptions. Every rejection names the flag, the value and the limit.
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import {
  CLIENTS_MAX,
  DEFAULT_DURATION_SECONDS,
  DEFAULT_URL,
  EXCHANGE_TYPES,
  PREFETCH_MAX,
  QUEUE_TYPES,
  QUEUES_MAX,
  SIZE_MAX_BYTES,
  SIZE_MIN_BYTES,
  THREADS_MAX,
  URLS_MAX,
} from './options.js';
import type { BenchOptions, ExchangeType, QueueArgValue, QueueType, SizeRange } from './options.js';

/** A command line the bench cannot run; the CLI prints it and exits with code 2. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

export type ParsedCommand = { readonly kind: 'help' } | { readonly kind: 'run'; readonly options: BenchOptions };

const FLAGS = {
  url: { type: 'string', short: 'u', multiple: true },
  compare: { type: 'string', multiple: true },
  rounds: { type: 'string' },
  warmup: { type: 'string' },
  producers: { type: 'string', short: 'x' },
  consumers: { type: 'string', short: 'y' },
  threads: { type: 'string' },
  queues: { type: 'string' },
  'queue-prefix': { type: 'string' },
  'queue-args': { type: 'string' },
  'queue-type': { type: 'string' },
  exchange: { type: 'string' },
  'exchange-type': { type: 'string' },
  'routing-key': { type: 'string' },
  'binding-key': { type: 'string' },
  'keep-queues': { type: 'boolean' },
  size: { type: 'string', short: 's' },
  persistent: { type: 'boolean' },
  rate: { type: 'string', short: 'r' },
  confirm: { type: 'string', short: 'c' },
  duration: { type: 'string', short: 'z' },
  pmessages: { type: 'string', short: 'C' },
  prefetch: { type: 'string', short: 'q' },
  'multi-ack': { type: 'string', short: 'A' },
  autoack: { type: 'boolean', short: 'a' },
  nagle: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  json: { type: 'boolean' },
  hgrm: { type: 'string' },
  plot: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const WARMUP_SECONDS_MAX = 3600;

type Values = ReturnType<typeof parseFlags>['values'];

function parseFlags(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: true });
}

export function parseBenchArgs(argv: readonly string[], coreCount: number = availableParallelism()): ParsedCommand {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv);
  } catch (error: unknown) {
    throw new BenchUsageError(describeParseError(error));
  }
  if (parsed.positionals.length > 0) {
    throw new BenchUsageError(`unexpected argument '${parsed.positionals[0] ?? ''}' (flags start with --)`);
  }
  const values = parsed.values;
  if (values.help === true) return { kind: 'help' };
  return { kind: 'run', options: buildOptions(values, coreCount) };
}

/** parseArgs' unknown-option text suggests positionals, which the bench has none of. */
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof Error && 'code' in error ? error.code : undefined;
  const flag = /'([^']+)'/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag !== undefined) return `unknown flag '${flag}'`;
  return message;
}

function buildOptions(values: Values, coreCount: number): BenchOptions {
  const urls = parseUrlList('--url', values.url ?? [DEFAULT_URL]);
  const compareUrls = values.compare === undefined ? undefined : parseUrlList('--compare', values.compare);
  const producers = parseInteger('--producers', values.producers, 1, 0, CLIENTS_MAX);
  const consumers = parseInteger('--consumers', values.consumers, 1, 0, CLIENTS_MAX);
  if (producers + consumers === 0) throw new BenchUsageError('--producers and --consumers are both 0: nothing to run');
  if (producers + consumers > CLIENTS_MAX) {
    throw new BenchUsageError(`--producers + --consumers is ${producers + consumers}, more than ${CLIENTS_MAX}`);
  }
  const clientThreadsMax = Math.min(producers + consumers, THREADS_MAX);
  const threads = parseInteger('--threads', values.threads, Math.min(producers + consumers, Math.max(1, coreCount)), 1, clientThreadsMax);
  const queueCount = parseInteger('--queues', values.queues, 1, 1, QUEUES_MAX);
  const queuePrefix = values['queue-prefix'] ?? `warren-bench-${randomBytes(3).toString('hex')}`;
  if (queuePrefix.length === 0 || queuePrefix.length > 200) {
    throw new BenchUsageError(`--queue-prefix must be 1 to 200 characters, got ${queuePrefix.length}`);
  }
  const exchangeType = parseExchangeType(values['exchange-type']);
  const exchange = values.exchange ?? (values['exchange-type'] === undefined ? '' : `${queuePrefix}-exchange`);
  if (exchange === '' && exchangeType !== 'direct') {
    throw new BenchUsageError(`the default exchange ('') is direct; --exchange-type ${exchangeType} needs --exchange NAME`);
  }
  if (exchange === '' && values['binding-key'] !== undefined) {
    throw new BenchUsageError("--binding-key needs a named --exchange: nothing can be bound to the default exchange ('')");
  }
  const autoAck = values.autoack === true;
  const prefetchCount = parseInteger('--prefetch', values.prefetch, 1000, 0, PREFETCH_MAX);
  const multiAckEvery = parseInteger('--multi-ack', values['multi-ack'], 1, 1, PREFETCH_MAX);
  if (autoAck && values['multi-ack'] !== undefined) throw new BenchUsageError('--multi-ack and --autoack exclude each other: with no-ack nothing is acked');
  if (!autoAck && prefetchCount > 0 && multiAckEvery > prefetchCount) {
    // The broker stops delivering at the prefetch limit, so the ack that frees it would never come.
    throw new BenchUsageError(`--multi-ack ${multiAckEvery} is larger than --prefetch ${prefetchCount}: consumers would stall`);
  }
  const durationSeconds = parsePositiveNumber('--duration', values.duration);
  const messagesPerProducer = values.pmessages === undefined ? undefined : parseInteger('--pmessages', values.pmessages, 0, 1, Number.MAX_SAFE_INTEGER);
  if (producers === 0 && messagesPerProducer !== undefined) throw new BenchUsageError('--pmessages needs producers; with --producers 0 use --duration');
  const plotFile = values.plot;
  if (plotFile !== undefined && !plotFile.toLowerCase().endsWith('.svg')) throw new BenchUsageError(`--plot writes SVG: the file name must end in .svg, got '${plotFile}'`);
  if (values.hgrm === '') throw new BenchUsageError('--hgrm needs a directory');
  return {
    urls,
    compareUrls,
    rounds: parseInteger('--rounds', values.rounds, 1, 1, 1000),
    warmupSeconds: values.warmup === undefined ? 0 : parseNonNegativeNumber('--warmup', values.warmup),
    producers,
    consumers,
    queueCount,
    queuePrefix,
    queueArgs: withQueueType(parseQueueArgs(values['queue-args']), values['queue-type']),
    exchange,
    exchangeType,
    routingKey: values['routing-key'],
    bindingKey: values['binding-key'],
    size: parseSize(values.size),
    ratePerProducer: parsePositiveNumber('--rate', values.rate),
    confirmWindow: values.confirm === undefined ? undefined : parseInteger('--confirm', values.confirm, 0, 1, 1_000_000),
    persistent: values.persistent === true,
    prefetchCount,
    multiAckEvery,
    autoAck,
    nagle: values.nagle === true,
    tlsCa: readTlsCa(values['tls-ca']),
    durationSeconds: durationSeconds ?? (messagesPerProducer === undefined ? DEFAULT_DURATION_SECONDS : undefined),
    messagesPerProducer,
    threads,
    keepQueues: values['keep-queues'] === true,
    json: values.json === true,
    hgrmDir: values.hgrm,
    plotFile,
  };
}

/** Each occurrence of the flag may hold a comma-separated list: `--url A,B` is `--url A --url B`. */
function parseUrlList(flag: string, texts: readonly string[]): string[] {
  const urls = texts.flatMap((text) => text.split(',')).map((text) => text.trim());
  if (urls.some((url) => url === '')) throw new BenchUsageError(`${flag} has an empty entry in '${texts.join(',')}'`);
  if (urls.length > URLS_MAX) throw new BenchUsageError(`${flag} lists ${urls.length} URLs, more than ${URLS_MAX}`);
  const seen = new Set<string>();
  for (const url of urls) {
    if (seen.has(url)) throw new BenchUsageError(`${flag} lists '${url}' twice`);
    seen.add(url);
  }
  return urls.map((url) => parseUrl(flag, url));
}

function parseUrl(flag: string, text: string): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new BenchUsageError(`${flag} '${text}' is not a URL (expected amqp://user:pass@host:port/vhost)`);
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new BenchUsageError(`${flag} '${text}' must start with amqp:// or amqps://`);
  }
  return text;
}

export function parseInteger(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new BenchUsageError(`${flag} expects a whole number, got '${text}'`);
  const value = Number(text);
  if (value < min || value > max) throw new BenchUsageError(`${flag} ${text} is out of range ${min}..${max}`);
  return value;
}

function parsePositiveNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new BenchUsageError(`${flag} expects a positive number, got '${text}'`);
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new BenchUsageError(`${flag} must be greater than 0, got '${text}'`);
  return value;
}

/** The PEM file of --tls-ca, read now so a wrong path is a usage error, not a failed run. */
function readTlsCa(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error: unknown) {
    throw new BenchUsageError(`--tls-ca ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new BenchUsageError(`--tls-ca ${file} holds no PEM certificate`);
  return text;
}

/** Seconds that may be 0 (off), up to an hour. */
function parseNonNegativeNumber(flag: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text)) throw new BenchUsageError(`${flag} expects a number of seconds (0 or more), got '${text}'`);
  const value = Number(text);
  if (!Number.isFinite(value) || value > WARMUP_SECONDS_MAX) throw new BenchUsageError(`${flag} must be at most ${WARMUP_SECONDS_MAX} seconds, got '${text}'`);
  return value;
}

export function parseSize(text: string | undefined): SizeRange {
  if (text === undefined) return { minBytes: 256, maxBytes: 256 };
  const match = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (match === null) throw new BenchUsageError(`--size expects BYTES or MIN-MAX, got '${text}'`);
  const minBytes = Number(match[1]);
  const maxBytes = match[2] === undefined ? minBytes : Number(match[2]);
  if (minBytes > maxBytes) throw new BenchUsageError(`--size range ${text} has its minimum above its maximum`);
  if (minBytes < SIZE_MIN_BYTES) {
    throw new BenchUsageError(`--size ${text} is below ${SIZE_MIN_BYTES} bytes: the body carries an 8-byte send timestamp`);
  }
  if (maxBytes > SIZE_MAX_BYTES) throw new BenchUsageError(`--size ${text} is above the ${SIZE_MAX_BYTES}-byte maximum`);
  return { minBytes, maxBytes };
}

function parseExchangeType(text: string | undefined): ExchangeType {
  if (text === undefined) return 'direct';
  const found = EXCHANGE_TYPES.find((type) => type === text);
  if (found === undefined) throw new BenchUsageError(`--exchange-type '${text}' is not one of ${EXCHANGE_TYPES.join(', ')}`);
  return found;
}

function parseQueueType(text: string): QueueType {
  const found = QUEUE_TYPES.find((type) => type === text);
  if (found === undefined) throw new BenchUsageError(`--queue-type '${text}' is not one of ${QUEUE_TYPES.join(', ')}`);
  return found;
}

/** --queue-type T is x-queue-type=T; saying it twice is fine, saying two different things is not. */
function withQueueType(args: Record<string, QueueArgValue>, text: string | undefined): Record<string, QueueArgValue> {
  if (text === undefined) return args;
  const queueType = parseQueueType(text);
  const given = args['x-queue-type'];
  if (given !== undefined && given !== queueType) {
    throw new BenchUsageError(`--queue-type ${queueType} contradicts --queue-args x-queue-type=${String(given)}`);
  }
  return { ...args, 'x-queue-type': queueType };
}

/** 'x-queue-type=quorum,x-max-length=1000' → { 'x-queue-type': 'quorum', 'x-max-length': 1000 }. */
export function parseQueueArgs(text: string | undefined): Record<string, QueueArgValue> {
  const args: Record<string, QueueArgValue> = {};
  if (text === undefined || text === '') return args;
  for (const pair of text.split(',')) {
    const equals = pair.indexOf('=');
    const key = equals < 0 ? '' : pair.slice(0, equals).trim();
    if (equals < 0 || key === '') throw new BenchUsageError(`--queue-args entry '${pair}' is not KEY=VALUE`);
    if (Object.hasOwn(args, key)) throw new BenchUsageError(`--queue-args sets '${key}' twice`);
    args[key] = typedArgValue(pair.slice(equals + 1).trim());
  }
  return args;
}

function typedArgValue(text: string): QueueArgValue {
  // RabbitMQ rejects x-max-length and friends given as strings, so integers must go as numbers.
  if (/^-?\d+$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  if (text === 'true') return true;
  if (text === 'false') return false;
  return text;
}
