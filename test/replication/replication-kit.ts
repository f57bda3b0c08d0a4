/** Shared helpers for the replication tests: temp dirs, a recording shard sink, replicators on ephemeral ports. */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordView, checkRecord } from '../../src/store/record-codec.js';
import { SEGMENT_HEADER_BYTES, parseSegmentFileName } from '../../src/store/record-layout.js';
import { LogKind, encodeEnqueueHeader, encodeIdList, enqueueHeaderBytes } from '../../src/shard/log-records.js';
import { Replicator } from '../../src/replication/replicator.js';
import type { ReplicaMember, ReplicatorOptions, ShardSink } from '../../src/replication/types.js';

const conditionPollMs = 5;

/** Waits until check() is truthy, polling, or fails after deadlineMs naming what it waited for. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, deadlineMs = 10_000): Promise<NonNullable<T>> {
  const startMs = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() - startMs > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, conditionPollMs));
  }
}

export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'warren-repl-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export class RecordingSink implements ShardSink {
  commits: Array<{ queueId: number; offset: number }> = [];
  imports: Array<{ queueId: number; offset: number; redelivered: boolean; payload: Buffer }> = [];
  ready: Array<{ queueId: number; nextOffset: number }> = [];

  commit(queueId: number, committedOffset: number): void {
    const last = this.committed(queueId);
    if (committedOffset <= last) throw new Error(`commit went from ${last} to ${committedOffset}`);
    this.commits.push({ queueId, offset: committedOffset });
  }

  import(queueId: number, offset: number, redelivered: boolean, payload: Buffer): void {
    this.imports.push({ queueId, offset, redelivered, payload: Buffer.from(payload) });
  }

  leadReady(queueId: number, nextOffset: number): void {
    this.ready.push({ queueId, nextOffset });
  }

  committed(queueId: number): number {
    let last = -1;
    for (const c of this.commits) if (c.queueId === queueId) last = c.offset;
    return last;
  }
}

export interface TestNode {
  name: string;
  dataDir: string;
  replicator: Replicator;
  sink: RecordingSink;
  logs: string[];
  member: ReplicaMember;
}

/** A replicator on 127.0.0.1 with an ephemeral port, its log lines kept. */
export async function startNode(name: string, dataDir: string, overrides: Partial<ReplicatorOptions> = {}): Promise<TestNode> {
  const sink = new RecordingSink();
  const logs: string[] = [];
  const replicator = new Replicator({
    nodeName: name,
    dataDir,
    secret: 'test-secret',
    fsync: { mode: 'always' },
    segmentBytes: 64 * 1024,
    bindHost: '127.0.0.1',
    replPort: 0,
    log: (level, msg) => logs.push(`${level}: ${msg}`),
    sink,
    ...overrides,
  });
  const port = await replicator.listen();
  return { name, dataDir, replicator, sink, logs, member: { node: name, repl: `127.0.0.1:${port}` } };
}

let nextMsgId = 1;

/** An enqueue record payload for queueId with a recognisable body. */
/**
 * Replicator nodes named `names`, each with its own directory in one temp dir, for the length
 * of body; their replicators are closed after it, whatever it did.
 */
export async function withNodes<const Names extends readonly string[]>(names: Names, body: (nodes: { -readonly [K in keyof Names]: TestNode }) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      for (const name of names) nodes.push(await startNode(name, join(dir, name)));
      await body(nodes as { -readonly [K in keyof Names]: TestNode });
    } finally {
      await Promise.all(nodes.map((n) => n.replicator.close()));
    }
  });
}

export function enqueuePayload(queueId: number, body: string, msgId = nextMsgId++): Buffer {
  const header = encodeEnqueueHeader(Buffer.allocUnsafe(enqueueHeaderBytes), queueId, msgId, 0);
  return Buffer.concat([header, Buffer.from(body)]);
}

export function settlePayload(queueId: number, msgIds: number[]): Buffer {
  return encodeIdList(queueId, msgIds);
}

export function msgIdOf(enqueue: Buffer): number {
  return enqueue.readDoubleLE(4);
}

export { LogKind };

/** Every record of a replica directory's segment files, framed bytes concatenated in offset order. */
export async function framedRecords(dir: string): Promise<{ bytes: Buffer; count: number; firstOffset: number }> {
  const names = (await readdir(dir)).filter((n) => parseSegmentFileName(n) !== undefined).sort();
  const parts: Buffer[] = [];
  let count = 0;
  const view = new RecordView();
  for (const name of names) {
    const buf = await readFile(join(dir, name));
    for (let position = SEGMENT_HEADER_BYTES; position < buf.length; position += view.recordBytes) {
      const check = checkRecord(buf, position, buf.length, view);
      if (check !== 'ok') break;
      parts.push(buf.subarray(position, position + view.recordBytes));
      count += 1;
    }
  }
  return { bytes: Buffer.concat(parts), count, firstOffset: parseSegmentFileName(names[0] ?? '') ?? 0 };
}

export function replicaDir(node: TestNode, queueId: number): string {
  return join(node.dataDir, 'replicas', String(queueId));
}
