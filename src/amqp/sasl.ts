// SASL responses carried by connection.start-ok / secure-ok.
import { decodeTableEntries } from './field-table.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * PLAIN (RFC 4616): authzid NUL authcid NUL passwd. RabbitMQ accepts only an empty
 * authzid; warren also accepts one equal to the username (acting as oneself). Undefined
 * when malformed: missing NULs, a NUL inside the password, another identity, empty username.
 */
export function parsePlain(response: Buffer): Credentials | undefined {
  const first = response.indexOf(0);
  if (first < 0) return undefined;
  const second = response.indexOf(0, first + 1);
  if (second < 0 || response.indexOf(0, second + 1) >= 0) return undefined;
  const authzid = response.toString('utf8', 0, first);
  const username = response.toString('utf8', first + 1, second);
  if (username.length === 0 || (authzid.length > 0 && authzid !== username)) return undefined;
  return { username, password: response.toString('utf8', second + 1) };
}

/**
 * AMQPLAIN: field table entries WITHOUT the 4-octet table length, with LOGIN and PASSWORD
 * as longstr ('S'). Undefined when the table does not decode or either field is missing
 * or of another type.
 */
export function parseAmqplain(response: Buffer): Credentials | undefined {
  let table;
  try {
    table = decodeTableEntries(response, 0, response.length);
  } catch {
    return undefined;
  }
  const login = table['LOGIN'];
  const password = table['PASSWORD'];
  if (login === undefined || login.type !== 'S' || password === undefined || password.type !== 'S') return undefined;
  return { username: login.value, password: password.value };
}
