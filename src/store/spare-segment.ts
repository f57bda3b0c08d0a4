/**
 * The zero-filled file that the next roll renames into place. Overwriting blocks that already
 * exist is 20–50% faster per fdatasync than extending a file (PLATFORM.md, and measured again
 * for this module), but zero-filling a whole segment inline would stall a commit; so the next
 * segment's file is prepared in the background while the current one fills.
 *
 * The background fill is paced: written all at once, 64 MiB of zeros queue ahead of every
 * commit's fdatasync on the same disk for a few hundred milliseconds (measured: commit fsync
 * p99 from ~1 ms to 20-50 ms, max 190 ms, while a spare was built), which was most of the
 * p99 publish→confirm latency at a fixed rate. In steps of zeroFillStepBytes, each synced on
 * its own and followed by a pause, a step delays a concurrent commit by about a millisecond.
 */
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { SPARE_SEGMENT_NAME } from './record-layout.js';
import { writeZeros } from './store-file-system.js';
import type { StoreLogger } from './log-record.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

export interface PreparedSpare {
  file: StoreFile;
  path: string;
  fileBytes: number;
}

/** One paced zero-fill step: ~1 ms of this disk's write bandwidth (PLATFORM.md). */
const zeroFillStepBytes = 256 * 1024;
/** Pause after each step: a 64 MiB spare takes ~3 s, while a segment takes ≥ 8 s to fill at full speed. */
const zeroFillPauseMs = 10;

export class SpareSegment {
  private building: Promise<PreparedSpare | undefined> | undefined;
  private ready = false;
  /** Bumped by discard(): a paced build of an older generation stops at its next step. */
  private generation = 0;
  private stopping: Promise<void> | undefined;
  readonly path: string;

  constructor(
    private readonly fs: StoreFileSystem,
    dir: string,
    private readonly fileBytes: number,
    private readonly log: StoreLogger,
  ) {
    this.path = join(dir, SPARE_SEGMENT_NAME);
  }

  /**
   * Starts building a spare unless one is ready or under way; `paced` for a build in the
   * background of commits, not for one that start-up waits for.
   */
  prepare(paced: boolean): void {
    if (this.building !== undefined) return;
    const building = this.build(paced, this.generation);
    this.building = building;
    void building.then(() => {
      if (this.building === building) this.ready = true;
    });
  }

  /** A zero-fill is writing to the disk now: syncs of the log compete with it. */
  get filling(): boolean {
    return this.building !== undefined && !this.ready;
  }

  /** The spare (waiting for it if it is being built), or undefined if there is none. */
  async take(): Promise<PreparedSpare | undefined> {
    const building = this.building;
    this.building = undefined;
    this.ready = false;
    return building === undefined ? undefined : await building;
  }

  /**
   * The spare if it is finished, else undefined at once: a roll must not wait for a zero-fill
   * (a fast writer can outrun it), so it then takes an empty file and the spare keeps building.
   */
  async takeIfReady(): Promise<PreparedSpare | undefined> {
    return this.ready ? this.take() : undefined;
  }

  /** Stops a build under way (at its next step) or deletes a finished spare. */
  discard(): Promise<void> {
    this.generation += 1;
    const stopping = this.take().then(async (spare) => {
      if (spare === undefined) return;
      await spare.file.close();
      await this.fs.unlink(spare.path);
    });
    // A build started after this waits for it: both use the same path.
    this.stopping = stopping.catch(() => undefined);
    return stopping;
  }

  private async build(paced: boolean, generation: number): Promise<PreparedSpare | undefined> {
    let file: StoreFile | undefined;
    try {
      await this.stopping;
      file = await this.fs.open(this.path, 'w+');
      const stepBytes = paced ? zeroFillStepBytes : this.fileBytes;
      for (let position = 0; position < this.fileBytes; position += stepBytes) {
        if (generation !== this.generation) {
          // Discarded while building: nobody will take this file.
          await file.close();
          await this.fs.unlink(this.path);
          return undefined;
        }
        const end = Math.min(position + stepBytes, this.fileBytes);
        await writeZeros(file, position, end);
        await file.datasync();
        if (paced && end < this.fileBytes) await pause(zeroFillPauseMs);
      }
      return { file, path: this.path, fileBytes: this.fileBytes };
    } catch (error: unknown) {
      // Not fatal: the next segment is then created empty and grows as it is written.
      await file?.close().catch(() => undefined);
      await this.fs.unlink(this.path).catch(() => undefined);
      this.log('warn', `could not preallocate ${this.path}: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }
}
