// What a bench message body carries, so any consumer thread can measure publish→deliver.
//
//   0               8                                   size
//   +---------------+-----------------------------------+
//   | send time µs  |  filler (zero bytes)              |
//   | float64 LE    |                                   |
//   +---------------+-----------------------------------+
//
// The send time is nowMicros() at publish, or with --rate the scheduled send time.

export const SEND_TIME_OFFSET = 0;
export const SEND_TIME_BYTES = 8;

export function writeSendTime(body: Buffer, sendTimeMicros: number): void {
  body.writeDoubleLE(sendTimeMicros, SEND_TIME_OFFSET);
}

/** undefined for bodies too short to carry a stamp (not sent by this bench). */
export function readSendTime(body: Buffer): number | undefined {
  if (body.length < SEND_TIME_OFFSET + SEND_TIME_BYTES) return undefined;
  return body.readDoubleLE(SEND_TIME_OFFSET);
}
