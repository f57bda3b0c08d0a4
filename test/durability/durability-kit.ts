/**
 * Helpers for the durability suites: real broker processes on real data directories —
 * confirmed publishing, draining a queue with basic.get until it says empty (no sleeps),
 * reading the shard segment files the way recovery does (layout from record-layout.ts),
 * and running warrenctl against a node.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, GetMessage, Options } from 'amqplib';
import {
  RECORD_BODY_BYTES_OFFSET,
  RECORD_CHECKED_OFFSET,
  RECORD_KIND_OFFSET,
  RECORD_OFFSET_OFFSET,
  RECORD_PAYLOAD_OFFSET,
  SEGMENT_FILE_SUFFIX,
  SEGMENT_HEADER_BYTES,
} from '../../src/store/record-layout.js';
import { LogKind } from '../../src/shard/log-records.js';
import { definitionsFileName } from '../../src/node/definitions-file.js';
import type { Definitions } from '../../src/front/definitions.js';

/** A data directory the test owns (the broker helper then keeps it across restarts). */
export function makeDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'warren-durability-'));
}

export function removeDataDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * amqplib with TCP_NODELAY: without it, a get after an ack waits for the server's delayed
 * TCP ack (~40 ms a message), which turns draining a few hundred messages into seconds.
 */
export function connect(url: string): Promise<ChannelModel> {
  return amqp.connect(url, { noDelay: true });
}

/** Publishes and waits for the broker's ack; rejects on a nack (or a closed channel). */
export function publishConfirmed(ch: ConfirmChannel, exchange: string, routingKey: string, body: Buffer, options: Options.Publish = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.publish(exchange, routingKey, body, options, (err: unknown) => {
      if (err === null || err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
}

/**
 * basic.get until the queue answers get-empty; returns what it got, acked (unless ack is
 * false), or stops after stopAfter messages. Messages recovered at start-up are in their queue before the node listens, so an
 * empty answer means the queue is empty — no waiting involved.
 */
export async function drainQueue(ch: Channel, queue: string, { ack = true, limit = 100_000, stopAfter = Infinity } = {}): Promise<GetMessage[]> {
  const got: GetMessage[] = [];
  for (;;) {
    if (got.length >= stopAfter) return got;
    const m = await ch.get(queue, { noAck: false });
    if (m === false) return got;
    got.push(m);
    if (ack) ch.ack(m);
    assert.ok(got.length <= limit, `more than ${limit} messages in '${queue}'`);
  }
}

/** The shard a durable queue was placed on, from the node's definitions file. */
export function shardOfQueue(dataDir: string, vhost: string, queue: string): number {
  const d = JSON.parse(readFileSync(join(dataDir, definitionsFileName), 'utf8')) as Definitions;
  const p = d.warren?.queue_placement.find((e) => e.vhost === vhost && e.name === queue);
  assert.ok(p !== undefined, `queue '${queue}' in vhost '${vhost}' is not in ${definitionsFileName}`);
  return p.shard;
}

export function shardDir(dataDir: string, shard: number): string {
  return join(dataDir, 'shards', String(shard));
}

/** Segment file names of a shard, oldest first. */
export function segmentFiles(dataDir: string, shard: number): string[] {
  return readdirSync(shardDir(dataDir, shard))
    .filter((n) => n.endsWith(SEGMENT_FILE_SUFFIX))
    .sort();
}

export interface RecordAt {
  /** Byte position of the record in its segment file. */
  position: number;
  recordBytes: number;
  kind: number;
  offset: number;
  payloadPosition: number;
  payloadBytes: number;
}

/** The records of a segment file, read as recovery reads them (no checksum check: the test only navigates). */
export function recordsOf(path: string): RecordAt[] {
  const buf = readFileSync(path);
  const out: RecordAt[] = [];
  let position = SEGMENT_HEADER_BYTES;
  while (position + RECORD_CHECKED_OFFSET <= buf.length) {
    const bodyBytes = buf.readUInt32LE(position + RECORD_BODY_BYTES_OFFSET);
    if (bodyBytes === 0) break; // the zero padding of a preallocated segment: end of data
    const recordBytes = RECORD_CHECKED_OFFSET + bodyBytes;
    out.push({
      position,
      recordBytes,
      kind: buf.readUInt8(position + RECORD_KIND_OFFSET),
      offset: Number(buf.readBigUInt64LE(position + RECORD_OFFSET_OFFSET)),
      payloadPosition: position + RECORD_PAYLOAD_OFFSET,
      payloadBytes: recordBytes - RECORD_PAYLOAD_OFFSET,
    });
    position += recordBytes;
  }
  return out;
}

export const enqueueKind = LogKind.enqueue;

const warrenctlEntry = new URL('../../src/cli/warrenctl.js', import.meta.url);

/** Runs warrenctl against the node with this data directory; resolves with stdout, rejects with stderr. */
export function warrenctl(dataDir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [warrenctlEntry.pathname, '--data-dir', dataDir, ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`warrenctl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The sequence number a test wrote at the start of a body, as decimal text ended by a space or the body's end. */
export function seqOf(m: { content: Buffer }): number {
  const space = m.content.indexOf(0x20);
  return Number(m.content.toString('utf8', 0, space < 0 ? m.content.length : space));
}
