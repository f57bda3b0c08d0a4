// Method frame payloads: [class u16][method u16][arguments], through the generated codec.
import { AmqpError, octetsSnippet } from './errors.js';
import { methodIdBytes } from './constants.js';
import type { AmqpMethod } from './spec.generated.js';
import { FrameType, decodeMethodArgs, methodArgsBytes, writeMethodArgs } from './spec.generated.js';

const frameError = 501;
const notImplemented = 540;

/**
 * Decodes a method frame payload. Throws AmqpError: 501 for a payload too short to hold
 * the ids or arguments that do not match the method's layout, 502 for a longlong past
 * 2^53-1, 540 for a class/method id outside the spec. Strings and tables are copies;
 * Buffer arguments (SASL responses) are copies too, so the result outlives the payload.
 */
export function decodeMethod(payload: Buffer): AmqpMethod {
  if (payload.length < methodIdBytes) {
    throw AmqpError.of(frameError, `type ${FrameType.method}, all octets = ${octetsSnippet(payload, 0, payload.length)}: unknown_frame`);
  }
  const id = payload.readUInt32BE(0);
  const m = decodeMethodArgs(id, payload, methodIdBytes, payload.length);
  if (m === undefined) {
    const classId = id >>> 16;
    const methodId = id & 0xffff;
    throw AmqpError.of(notImplemented, `unknown method: class ${classId}, method ${methodId}`, classId, methodId);
  }
  return m;
}

/** Octets of the method payload (ids + arguments). Throws RangeError on a value that cannot be encoded. */
export function methodPayloadBytes(m: AmqpMethod): number {
  return methodIdBytes + methodArgsBytes(m);
}

/** Writes the method payload at b[o]; returns the offset after it. b must have methodPayloadBytes(m) room. */
export function writeMethodPayload(b: Buffer, o: number, m: AmqpMethod): number {
  b.writeUInt32BE(m.id, o);
  return writeMethodArgs(b, o + methodIdBytes, m);
}

/** The method payload in a new buffer (tests, tools; the broker writes through FrameWriter). */
export function encodeMethod(m: AmqpMethod): Buffer {
  const b = Buffer.allocUnsafe(methodPayloadBytes(m));
  writeMethodPayload(b, 0, m);
  return b;
}
