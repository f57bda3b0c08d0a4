/**
 * The zero-filled file that the next roll renames into place. Overwriting blocks that already
 * exist is 20–50% faster per fdatasync than extending a file (PLATFORM.md, and measured again
 * for this module), but zero-filling a whole segment inline would stall a commit; so the next
 * segment's file is prepared in the background while the current one fills.
 */
import { join } from 'node:path';
import { SPARE_SEGMENT_NAME } from './record-layout.js';
import { writeZeros } from './store-file-system.js';
import type { StoreLogger } from './log-record.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

export interface PreparedSpare {
  file: StoreFile;
  path: string;
  fileBytes: number;
}

export class SpareSegment {
  private building: Promise<PreparedSpare | undefined> | undefined;
  private ready = false;
  readonly path: string;

  constructor(
    private readonly fs: StoreFileSystem,
    dir: string,
    private readonly fileBytes: number,
    private readonly log: StoreLogger,
  ) {
    this.path = join(dir, SPARE_SEGMENT_NAME);
  }

  /** Starts building a spare unless one is ready or under way. */
  prepare(): void {
    if (this.building !== undefined) return;
    const building = this.build();
    this.building = building;
    void building.then(() => {
      if (this.building === building) this.ready = true;
    });
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

  async discard(): Promise<void> {
    const spare = await this.take();
    if (spare === undefined) return;
    await spare.file.close();
    await this.fs.unlink(spare.path);
  }

  private async build(): Promise<PreparedSpare | undefined> {
    let file: StoreFile | undefined;
    try {
      file = await this.fs.open(this.path, 'w+');
      await writeZeros(file, 0, this.fileBytes);
      await file.datasync();
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
