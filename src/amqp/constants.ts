// Every AMQP 0-9-1 binary layout warren reads or writes, drawn once.
//
// Protocol header (client -> server, first 8 octets of a connection):
//   'A' 'M' 'Q' 'P' 0 0 9 1
//
// Frame:
//   0      1         3             7                  7+size
//   +------+---------+-------------+-- ... --+------+
//   | type | channel | size (u32)  | payload | 0xCE |
//   +------+---------+-------------+-- ... --+------+
//   frame-max bounds the whole frame, 8 octets of framing included.
//
// Method frame payload:
//   0          2           4
//   | class u16 | method u16 | arguments ... |
//   bit arguments that follow each other share octets, first bit = least significant.
//
// Content header frame payload:
//   0          2           4                   12
//   | class u16 | weight u16 | body size (u64) | property flags u16 [u16 ...] | property list |
//   flags: bit 15 = first property ... bit 2 = 14th; bit 0 = another flags word follows.
//
// Body frame payload: body octets, at most frame-max - 8 per frame.
// Heartbeat frame: type 8, channel 0, size 0.
export { FRAME_END, FrameType, frameMinBytes } from './spec.generated.js';

export const PROTOCOL_HEADER: Buffer = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);

/** type (1) + channel (2) + size (4) */
export const frameHeaderBytes = 7;
export const frameEndBytes = 1;
/** What a frame adds around its payload; frame-max counts it. */
export const frameOverheadBytes = frameHeaderBytes + frameEndBytes;

export const frameTypeOffset = 0;
export const frameChannelOffset = 1;
export const frameSizeOffset = 3;

/** class id + method id at the start of a method payload */
export const methodIdBytes = 4;

/** class id + weight + body size, before the property flags */
export const contentHeaderPrefixBytes = 12;
export const contentHeaderBodySizeOffset = 4;
export const propertyFlagsBytes = 2;
export const propertyFlagsContinuation = 0x0001;
