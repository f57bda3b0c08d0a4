// How RabbitMQ (rabbit_reader, rabbit_command_assembler, rabbit_binary_parser and the
// generated rabbit_framing_amqp_0_9_1) answers malformed input, and what warren does:
//
// - frame larger than frame-max: rabbit_reader checks the header as soon as it arrives,
//   `PayloadSize > FrameMax - 8 + FRAME_SIZE_FUDGE(8)` (i.e. it tolerates clients that
//   forget the 8 octets of framing), frame_max 0 meaning no limit -> 501 FRAME_ERROR
//   "type T, all octets = <<>>: {frame_too_large,Payload,FrameMax-8}", connection closed.
// - frame-end octet not 0xCE: 501 FRAME_ERROR "... {invalid_frame_end_marker,X}".
// - unknown frame type (and a heartbeat with a payload, a method frame under 4 octets,
//   a content header under 12): analyze_frame returns error -> 501 FRAME_ERROR
//   "type T, all octets = <<...>>: unknown_frame".
// - truncated method arguments, extra trailing octets, a table or string length past the
//   end: the generated decoder's binary pattern does not match -> 501 FRAME_ERROR
//   "cannot decode <<...>>" with the method's class and method id. A shortstr that is not
//   UTF-8 (every method but the content-carrying ones) -> 501 "Malformed UTF-8 in shortstr".
// - a field table entry with an unknown type tag: rabbit_binary_parser has no clause for
//   it, the reader process crashes and the socket is dropped without connection.close.
//   warren answers 501 FRAME_ERROR like the other undecodable fields (spec: "a malformed
//   frame that the recipient could not decode").
// - unknown class/method id: lookup_method_name exits with {unknown_method_id, Id}, again
//   a crash and a dropped socket in RabbitMQ. warren answers 540 NOT_IMPLEMENTED (as
//   LavinMQ does), spec: "tried to use functionality that is not implemented".
// - a longlong past 2^53-1 (delivery tags): warren cannot hold it exactly -> 502 SYNTAX_ERROR.
import { replyCodeName } from './spec.generated.js';

/** Longest reply text that fits a shortstr. */
export const replyTextMaxBytes = 255;

/**
 * A protocol error caused by bytes from the peer. replyText is sent verbatim in
 * channel.close / connection.close; build it with AmqpError.of to get RabbitMQ's
 * "NAME - explanation" form. isHardError(replyCode) says whether the connection closes.
 */
export class AmqpError extends Error {
  constructor(
    readonly replyCode: number,
    readonly replyText: string,
    readonly classId = 0,
    readonly methodId = 0,
  ) {
    super(replyText);
    this.name = 'AmqpError';
  }

  /** RabbitMQ style: `AmqpError.of(406, "inequivalent arg 'durable'")` -> "PRECONDITION_FAILED - inequivalent arg 'durable'", cut to 255 bytes. */
  static of(replyCode: number, explanation: string, classId = 0, methodId = 0): AmqpError {
    return new AmqpError(replyCode, fitReplyText(`${replyCodeName(replyCode)} - ${explanation}`), classId, methodId);
  }

  /** Same error, attributed to a method (combined id = classId << 16 | methodId). */
  withMethod(id: number): AmqpError {
    return new AmqpError(this.replyCode, this.replyText, id >>> 16, id & 0xffff);
  }
}

/** Cuts s to at most 255 UTF-8 bytes without splitting a character. */
export function fitReplyText(s: string): string {
  if (Buffer.byteLength(s) <= replyTextMaxBytes) return s;
  const bytes = Buffer.from(s);
  let cut = replyTextMaxBytes;
  // back off to a character boundary: continuation bytes are 0b10xxxxxx
  while (cut > 0 && ((bytes[cut] as number) & 0xc0) === 0x80) cut--;
  return bytes.toString('utf8', 0, cut);
}

/** Erlang-like rendering of the first 16 octets, as RabbitMQ's payload snippets: <<1,2,3>>. */
export function octetsSnippet(b: Uint8Array, start: number, end: number): string {
  const stop = Math.min(end, start + 16);
  const parts: number[] = [];
  for (let i = start; i < stop; i++) parts.push(b[i] as number);
  return `<<${parts.join(',')}>>`;
}
