// The AMQP 0-9-1 codec: pure, no I/O.
export * from './spec.generated.js';
export { AmqpError, fitReplyText, replyTextMaxBytes } from './errors.js';
export {
  PROTOCOL_HEADER,
  contentHeaderPrefixBytes,
  frameEndBytes,
  frameHeaderBytes,
  frameOverheadBytes,
  methodIdBytes,
} from './constants.js';
export type { FieldTable, FieldType, FieldValue } from './field-table.js';
export {
  decodeTable,
  decodeTableEntries,
  emptyTable,
  encodeTable,
  encodedTableBytes,
  fieldBool,
  fieldEquals,
  fieldEquivalent,
  fieldInt,
  fieldString,
  skipTable,
  tableFromJs,
  tableNestingMax,
  tableToJs,
  tablesEqual,
  valueFromJs,
  valueToJs,
  writeTable,
} from './field-table.js';
export type { BasicProperties, ContentHeader } from './content-header.js';
export {
  decodeContentHeader,
  decodeProperties,
  encodeProperties,
  peekDeliveryMode,
  peekExpiration,
  peekHeaders,
  peekPriority,
  peekTimestamp,
  peekUserId,
  validateProperties,
  withHeaders,
  withoutExpiration,
} from './content-header.js';
export { decodeMethod, encodeMethod, methodPayloadBytes, writeMethodPayload } from './method-codec.js';
export type { FrameHandler } from './frame-parser.js';
export { FrameParser } from './frame-parser.js';
export { FrameWriter, encodeShortstr, encodeShortstrPair } from './frame-writer.js';
export type { Credentials } from './sasl.js';
export { parseAmqplain, parsePlain } from './sasl.js';
