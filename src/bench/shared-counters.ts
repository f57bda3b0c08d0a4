// The SharedArrayBuffer through which the main thread steers the client threads and
// samples their progress each second, without a message per event.
//
//   byte 0        4             8        16               64
//        +--------+-------------+--------+----------------+
//        | phase  | ready groups| (pad)  | start µs (f64) |  header, 64 bytes
//        +--------+-------------+--------+----------------+
//   then one 64-byte block per client (own cache line, single writer):
//        | published | confirmed | nacked | consumed | running | (pad to 64) |
//          int32 counters wrap at 2^32; readers take deltas, so only rates need fit in 32 bits.

export const Phase = {
  /** Clients connect and register consumers, then count themselves ready. */
  connecting: 0,
  running: 1,
  /** Producers stop, wait for their confirms and close. */
  stopPublishing: 2,
  /** Consumers cancel, ack what they hold and close. */
  stopConsuming: 3,
  /** Something failed: every client closes at once. */
  abort: 9,
  /** The run is over: releases every waiter still parked on the phase word. */
  finished: 10,
} as const;
export type PhaseValue = (typeof Phase)[keyof typeof Phase];

const PHASE_INDEX = 0;
const READY_GROUPS_INDEX = 1;
const START_MICROS_BYTE_OFFSET = 16;
const HEADER_BYTES = 64;
const CLIENT_BLOCK_BYTES = 64;
const CLIENT_BLOCK_INT32S = CLIENT_BLOCK_BYTES / 4;

export const ClientSlot = {
  published: 0,
  confirmed: 1,
  nacked: 2,
  consumed: 3,
  /** 1 while a producer still publishes or waits for confirms; a gauge, not a counter. */
  running: 4,
} as const;
export type ClientSlotIndex = (typeof ClientSlot)[keyof typeof ClientSlot];

export function createSharedCounters(clientCount: number): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + clientCount * CLIENT_BLOCK_BYTES);
}

/** A view of the shared counters; each thread builds its own over the same buffer. */
export class SharedCounters {
  private readonly int32s: Int32Array;
  private readonly startMicrosView: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.int32s = new Int32Array(buffer);
    this.startMicrosView = new Float64Array(buffer, START_MICROS_BYTE_OFFSET, 1);
  }

  get clientCount(): number {
    return (this.buffer.byteLength - HEADER_BYTES) / CLIENT_BLOCK_BYTES;
  }

  phase(): number {
    return Atomics.load(this.int32s, PHASE_INDEX);
  }

  /** Phases only move forward; abort overrides everything. */
  advancePhase(phase: PhaseValue): void {
    for (;;) {
      const current = Atomics.load(this.int32s, PHASE_INDEX);
      if (current >= phase) return;
      if (Atomics.compareExchange(this.int32s, PHASE_INDEX, current, phase) === current) break;
    }
    Atomics.notify(this.int32s, PHASE_INDEX);
  }

  /** Resolves once the phase has reached at least `phase`, without polling. */
  async waitForPhase(phase: PhaseValue): Promise<void> {
    for (;;) {
      const current = Atomics.load(this.int32s, PHASE_INDEX);
      if (current >= phase) return;
      const waiter = Atomics.waitAsync(this.int32s, PHASE_INDEX, current);
      if (waiter.async) await waiter.value;
    }
  }

  /** Written before the running phase is published, so readers that saw `running` see it. */
  setStartMicros(startMicros: number): void {
    this.startMicrosView[0] = startMicros;
  }

  startMicros(): number {
    return this.startMicrosView[0] ?? 0;
  }

  markGroupReady(): void {
    Atomics.add(this.int32s, READY_GROUPS_INDEX, 1);
    Atomics.notify(this.int32s, READY_GROUPS_INDEX);
  }

  readyGroups(): number {
    return Atomics.load(this.int32s, READY_GROUPS_INDEX);
  }

  add(client: number, slot: ClientSlotIndex, amount: number): void {
    Atomics.add(this.int32s, this.indexOf(client, slot), amount);
  }

  set(client: number, slot: ClientSlotIndex, value: number): void {
    Atomics.store(this.int32s, this.indexOf(client, slot), value);
  }

  /** The raw 32-bit value, as an unsigned number. */
  read(client: number, slot: ClientSlotIndex): number {
    return Atomics.load(this.int32s, this.indexOf(client, slot)) >>> 0;
  }

  private indexOf(client: number, slot: ClientSlotIndex): number {
    if (!(client >= 0 && client < this.clientCount)) throw new RangeError(`client ${client} outside 0..${this.clientCount - 1}`);
    return HEADER_BYTES / 4 + client * CLIENT_BLOCK_INT32S + slot;
  }
}

/**
 * Main-thread totals of the wrapping 32-bit counters: each sample adds the delta since the
 * last, so totals stay exact as long as fewer than 2^32 events happen between two samples.
 */
export class CounterTotals {
  private readonly lastRaw: Uint32Array;
  private readonly totals: Float64Array;
  private static readonly SLOTS = [ClientSlot.published, ClientSlot.confirmed, ClientSlot.nacked, ClientSlot.consumed] as const;

  constructor(private readonly counters: SharedCounters) {
    this.lastRaw = new Uint32Array(counters.clientCount * CounterTotals.SLOTS.length);
    this.totals = new Float64Array(counters.clientCount * CounterTotals.SLOTS.length);
  }

  sample(): void {
    const slotCount = CounterTotals.SLOTS.length;
    for (let client = 0; client < this.counters.clientCount; client++) {
      for (let slotIndex = 0; slotIndex < slotCount; slotIndex++) {
        const slot = CounterTotals.SLOTS[slotIndex] ?? ClientSlot.published;
        const index = client * slotCount + slotIndex;
        const raw = this.counters.read(client, slot);
        this.totals[index] = (this.totals[index] ?? 0) + ((raw - (this.lastRaw[index] ?? 0)) >>> 0);
        this.lastRaw[index] = raw;
      }
    }
  }

  /** Total of one slot for one client as of the last sample. */
  of(client: number, slot: Exclude<ClientSlotIndex, typeof ClientSlot.running>): number {
    const slotIndex = CounterTotals.SLOTS.indexOf(slot);
    return this.totals[client * CounterTotals.SLOTS.length + slotIndex] ?? 0;
  }

  sum(slot: Exclude<ClientSlotIndex, typeof ClientSlot.running>): number {
    let total = 0;
    for (let client = 0; client < this.counters.clientCount; client++) total += this.of(client, slot);
    return total;
  }

  /** Producers (or consumers) still marked running; read live, not from the last sample. */
  runningCount(): number {
    let running = 0;
    for (let client = 0; client < this.counters.clientCount; client++) running += this.counters.read(client, ClientSlot.running);
    return running;
  }
}
