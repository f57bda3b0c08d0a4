// Field values spelled the way RabbitMQ's error messages print them (Erlang's ~tp), so that
// reply texts match RabbitMQ's for clients and tests that compare them.
import type { FieldValue } from '../amqp/field-table.js';
import { integerText, longstrBytes } from './field-value-identity.js';

/** The Erlang atom RabbitMQ's decoder gives each AMQP field type (rabbit_binary_parser). */
export const ERLANG_TYPE_NAMES: Readonly<Record<FieldValue['type'], string>> = {
  t: 'bool',
  b: 'byte',
  B: 'unsignedbyte',
  s: 'short',
  u: 'unsignedshort',
  I: 'signedint',
  i: 'unsignedint',
  l: 'long',
  f: 'float',
  d: 'double',
  D: 'decimal',
  T: 'timestamp',
  S: 'longstr',
  x: 'binary',
  A: 'array',
  F: 'table',
  V: 'void',
};

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '\b': '\\b', '\f': '\\f', '\x1b': '\\e',
};

/** ~tp of an Erlang binary: <<"text">>, <<"tèxt"/utf8>>, or <<1,2,3>> when not printable. */
export function erlangBinaryText(bytes: Buffer): string {
  if (bytes.length === 0) return '<<>>';
  const byteList = `<<${[...bytes].join(',')}>>`;
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) return byteList;
  let body = '';
  let ascii = true;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    const escape = ESCAPES[char];
    if (escape !== undefined) body += escape;
    else if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) return byteList;
    else body += char;
    if (code >= 0x80) ascii = false;
  }
  return ascii ? `<<"${body}">>` : `<<"${body}"/utf8>>`;
}

/** ~tp of the value part of a decoded field ({Type, Value} without the type). */
export function erlangValueText(v: FieldValue): string {
  switch (v.type) {
    case 't':
      return v.value ? 'true' : 'false';
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i': case 'l': case 'T':
      return integerText(v.value);
    case 'f': case 'd':
      return erlangFloatText(v.value);
    case 'D':
      return `{${v.value.scale},${integerText(v.value.digits)}}`;
    case 'S':
      return erlangBinaryText(longstrBytes(v));
    case 'x':
      return erlangBinaryText(v.value);
    case 'A':
      return `[${v.value.map((item) => `{${ERLANG_TYPE_NAMES[item.type]},${erlangValueText(item)}}`).join(',')}]`;
    case 'F':
      return `[${Object.entries(v.value)
        .map(([key, item]) => `{${erlangBinaryText(Buffer.from(key, 'utf8'))},${ERLANG_TYPE_NAMES[item.type]},${erlangValueText(item)}}`)
        .join(',')}]`;
    case 'V':
      return 'undefined';
  }
}

/** Erlang always prints a float with a fraction or an exponent: 1.0, 1.5, 1.0e21. */
function erlangFloatText(value: number): string {
  const text = String(value);
  const [mantissa = text, exponent] = text.split('e');
  const withFraction = mantissa.includes('.') ? mantissa : `${mantissa}.0`;
  return exponent === undefined ? withFraction : `${withFraction}e${exponent.replace('+', '')}`;
}

/** The last column io_lib's ~p fills before it breaks a term over lines (its line length is 80). */
const erlangPrettyLastColumn = 78;

/**
 * An atom or a {Tag,Value} tuple as Erlang's ~p lays it out when it starts `column` characters
 * into the text: a tuple that would reach column 79 breaks after its comma, the value
 * indented under the tag (RabbitMQ's expiration errors carry the break).
 */
export function erlangPrettyTerm(term: string | readonly [tag: string, value: string], column: number): string {
  if (typeof term === 'string') return term;
  const [tag, value] = term;
  const flat = `{${tag},${value}}`;
  if (column + flat.length <= erlangPrettyLastColumn) return flat;
  return `{${tag},\n${' '.repeat(column + 1)}${value}}`;
}
