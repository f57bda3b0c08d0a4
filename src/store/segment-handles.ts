/**
 * Read handles of the segments that are not being written, opened on demand and kept in a small
 * LRU: a shard reading paged-out queues touches a few segments at a time, while a long log can
 * have hundreds. A handle in use by a read is never closed under it.
 */
import { join } from 'node:path';
import type { Segment } from './segment.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

export class SegmentHandles {
  private readonly recent = new Map<Segment, true>();
  private readonly opening = new Map<Segment, Promise<StoreFile>>();
  private readonly users = new Map<StoreFile, number>();
  private readonly closeWhenIdle = new Set<StoreFile>();

  constructor(
    private readonly fs: StoreFileSystem,
    private readonly dir: string,
    private readonly readHandlesMax: number,
  ) {}

  /** A handle to read `segment`; pair with release(). */
  async acquire(segment: Segment): Promise<StoreFile> {
    let file = segment.file;
    if (file === undefined) {
      let opening = this.opening.get(segment);
      if (opening === undefined) {
        opening = this.fs.open(join(this.dir, segment.name), 'r');
        this.opening.set(segment, opening);
      }
      try {
        file = await opening;
      } finally {
        this.opening.delete(segment);
      }
      if (segment.file === undefined) {
        segment.file = file;
        this.adopt(segment);
      } else {
        file = segment.file;
      }
    } else if (this.recent.has(segment)) {
      this.recent.delete(segment);
      this.recent.set(segment, true);
    }
    this.users.set(file, (this.users.get(file) ?? 0) + 1);
    return file;
  }

  release(file: StoreFile): void {
    const users = (this.users.get(file) ?? 1) - 1;
    if (users > 0) {
      this.users.set(file, users);
      return;
    }
    this.users.delete(file);
    if (this.closeWhenIdle.delete(file)) void file.close().catch(() => undefined);
  }

  /** Takes a segment that stopped being written into the read cache, handle and all. */
  adopt(segment: Segment): void {
    this.recent.set(segment, true);
    this.evict();
  }

  /** Forgets a segment's handle (deleted, truncated away, or about to be written again). */
  async drop(segment: Segment): Promise<void> {
    const file = segment.file;
    segment.file = undefined;
    this.recent.delete(segment);
    if (file !== undefined) await this.closeSoon(file);
  }

  async closeAll(segments: Segment[]): Promise<void> {
    await Promise.all(segments.map((segment) => this.drop(segment)));
  }

  private evict(): void {
    for (const segment of this.recent.keys()) {
      if (this.recent.size <= this.readHandlesMax) return;
      const file = segment.file;
      if (file !== undefined && this.users.has(file)) continue;
      this.recent.delete(segment);
      segment.file = undefined;
      if (file !== undefined) void file.close().catch(() => undefined);
    }
  }

  private async closeSoon(file: StoreFile): Promise<void> {
    if (this.users.has(file)) this.closeWhenIdle.add(file);
    else await file.close();
  }
}
