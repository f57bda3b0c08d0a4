/**
 * The few file operations the log uses, behind an interface so tests can inject ENOSPC/EIO
 * at any call. The real implementation is node:fs/promises with FileHandle.
 */
import { fdatasyncSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

export interface StoreFile {
  /** Writes up to `length` bytes; returns how many were written (may be fewer). */
  write(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number>;
  /** Reads up to `length` bytes; returns how many were read (fewer at end of file). */
  read(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number>;
  datasync(): Promise<void>;
  /** fdatasync on the calling thread (blocks it): no thread-pool round trip. Throws as datasync rejects. */
  datasyncNow(): void;
  truncate(lengthBytes: number): Promise<void>;
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

/** 'r' read only; 'r+' read/write an existing file; 'w+' create or empty, read/write. */
export type StoreOpenFlags = 'r' | 'r+' | 'w+';

export interface StoreFileSystem {
  open(path: string, flags: StoreOpenFlags): Promise<StoreFile>;
  readdir(dir: string): Promise<string[]>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(dir: string): Promise<void>;
  /** fsync of the directory itself, so that creates, renames and unlinks in it are durable. */
  syncDir(dir: string): Promise<void>;
}

class NodeStoreFile implements StoreFile {
  constructor(private readonly handle: FileHandle) {}

  write(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number> {
    // A pwrite into the page cache takes microseconds; a thread-pool round trip and its wake-up
    // cost more than that on the confirm path. fdatasync, the slow part, is either (datasyncNow, datasync).
    try {
      return Promise.resolve(writeSync(this.handle.fd, buf, bufOffset, length, position));
    } catch (error: unknown) {
      return Promise.reject(error);
    }
  }

  async read(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buf, bufOffset, length, position);
    return bytesRead;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  datasyncNow(): void {
    fdatasyncSync(this.handle.fd);
  }

  truncate(lengthBytes: number): Promise<void> {
    return this.handle.truncate(lengthBytes);
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export const nodeStoreFileSystem: StoreFileSystem = {
  async open(path, flags) {
    return new NodeStoreFile(await open(path, flags));
  },
  readdir: (dir) => readdir(dir),
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  async syncDir(dir) {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Writes all of buf[0, length) at `position`, looping over short writes. */
export async function writeFully(file: StoreFile, buf: Uint8Array, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const written = await file.write(buf, done, length - done, position + done);
    if (written <= 0) throw Object.assign(new Error(`write returned ${written}`), { code: 'EIO' });
    done += written;
  }
}

/** Reads up to `length` bytes at `position` into buf[0..), looping until EOF; returns bytes read. */
export async function readFully(file: StoreFile, buf: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const got = await file.read(buf, done, length - done, position + done);
    if (got === 0) break;
    done += got;
  }
  return done;
}

const zeroChunkBytes = 1024 * 1024;
let zeroChunk: Buffer | undefined;

/** Overwrites [from, to) with zeros, in 1 MiB writes (preallocation and wiping a tail). */
export async function writeZeros(file: StoreFile, from: number, to: number): Promise<void> {
  zeroChunk ??= Buffer.alloc(zeroChunkBytes);
  for (let position = from; position < to; position += zeroChunkBytes) {
    await writeFully(file, zeroChunk, Math.min(zeroChunkBytes, to - position), position);
  }
}
