/**
 * Little-endian binary writer/reader for the records that cross the rings between
 * the front and the shards. Writers reuse one growable scratch buffer (no allocation
 * per record once warm); readers walk a view that is valid only while the ring
 * handler runs, so anything kept must be copied (`bytesCopy`).
 */
import assert from 'node:assert/strict';

const initialScratchBytes = 64 * 1024;

export class RecordWriter {
  private buf = Buffer.allocUnsafe(initialScratchBytes);
  private pos = 0;

  reset(): this {
    this.pos = 0;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** A view of what was written since reset(); valid until the next reset(). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(extraBytes: number): void {
    const need = this.pos + extraBytes;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** A safe integer or any double (ids, sequence numbers, timestamps). */
  f64(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(4 + b.length);
    this.buf.writeUInt32LE(b.length, this.pos);
    this.pos += 4;
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Raw bytes without a length prefix (the reader must know the size). */
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  str(s: string): this {
    const n = Buffer.byteLength(s);
    this.ensure(4 + n);
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4;
    this.buf.write(s, this.pos);
    this.pos += n;
    return this;
  }
}

export class RecordReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  reset(buf: Buffer): RecordReader {
    return new RecordReader(buf);
  }

  u8(): number {
    return this.buf[this.pos++] ?? assert.fail('record underflow');
  }

  u16(): number {
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A view of a length-prefixed byte string (valid while the record is). */
  bytesView(): Buffer {
    const n = this.u32();
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  bytesCopy(): Buffer {
    return Buffer.from(this.bytesView());
  }

  rawView(n: number): Buffer {
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  str(): string {
    const n = this.u32();
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }
}
