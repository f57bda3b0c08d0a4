/**
 * Users, password hashes and per-vhost permissions.
 *
 * Password hashes use RabbitMQ's rabbit_password_hashing_sha256 scheme —
 * base64(salt ‖ SHA-256(salt ‖ password)) with a 4-byte random salt — so hashes in
 * exported RabbitMQ definitions can be imported and checked unchanged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const hashingAlgorithm = 'rabbit_password_hashing_sha256';
const saltBytes = 4;

export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

export interface User {
  name: string;
  passwordHash: string;
  tags: string[];
  /** vhost → permission regexes */
  permissions: Map<string, Permissions>;
}

export function hashPassword(password: string, salt: Buffer = randomBytes(saltBytes)): string {
  const digest = createHash('sha256').update(salt).update(password, 'utf8').digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

export function checkPassword(password: string, passwordHash: string): boolean {
  const raw = Buffer.from(passwordHash, 'base64');
  if (raw.length !== saltBytes + 32) return false;
  const expected = Buffer.from(hashPassword(password, raw.subarray(0, saltBytes)), 'base64');
  return timingSafeEqual(raw, expected);
}

export class UserStore {
  readonly users = new Map<string, User>();

  add(name: string, password: string, tags: string[] = []): User {
    const u: User = { name, passwordHash: hashPassword(password), tags, permissions: new Map() };
    this.users.set(name, u);
    return u;
  }

  /** The user if the password matches; undefined otherwise (unknown user or wrong password). */
  authenticate(name: string, password: string): User | undefined {
    const u = this.users.get(name);
    if (u === undefined) return undefined;
    return checkPassword(password, u.passwordHash) ? u : undefined;
  }

  setPermissions(user: string, vhost: string, p: Permissions): void {
    const u = this.users.get(user);
    if (u === undefined) throw new Error(`no such user: ${user}`);
    u.permissions.set(vhost, p);
  }
}
