import assert from 'node:assert/strict';

/**
 * Byte positions of every `strideRecords`-th record of one segment, so a random read scans at
 * most strideRecords - 1 records. A Uint32Array grown by doubling: 4 bytes per stride, e.g.
 * 32 KiB for a 64 MiB segment of 256-byte records at stride 32.
 */
export class SparseIndex {
  private positions: Uint32Array;
  private entries = 0;
  private readonly strideShift: number;

  constructor(readonly strideRecords: number) {
    assert.ok(Number.isInteger(Math.log2(strideRecords)), `index stride ${strideRecords} must be a power of two`);
    this.strideShift = Math.log2(strideRecords);
    this.positions = new Uint32Array(64);
  }

  /** Called for every record of the segment, in order. */
  note(recordIndex: number, position: number): void {
    if ((recordIndex & (this.strideRecords - 1)) !== 0) return;
    const entry = recordIndex >>> this.strideShift;
    assert.equal(entry, this.entries, 'sparse index fed out of order');
    if (entry === this.positions.length) {
      const grown = new Uint32Array(this.positions.length * 2);
      grown.set(this.positions);
      this.positions = grown;
    }
    this.positions[entry] = position;
    this.entries = entry + 1;
  }

  /** The indexed record at or before recordIndex: its index and byte position. */
  floor(recordIndex: number): { recordIndex: number; position: number } {
    const entry = recordIndex >>> this.strideShift;
    assert.ok(entry < this.entries, `record ${recordIndex} beyond the index (${this.entries} entries)`);
    return { recordIndex: entry << this.strideShift, position: this.positions[entry] ?? 0 };
  }

  /** Forgets records from recordCount on (truncation). */
  truncate(recordCount: number): void {
    this.entries = Math.min(this.entries, (recordCount + this.strideRecords - 1) >>> this.strideShift);
  }
}
