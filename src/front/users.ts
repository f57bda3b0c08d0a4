/**
 * Users, password hashes and per-vhost permissions.
 *
 * Password hashes use RabbitMQ's schemes — base64(salt ‖ H(salt ‖ password)) with a 4-byte
 * random salt, H being SHA-256 (rabbit_password_hashing_sha256, the default), SHA-512 or
 * MD5 (what RabbitMQ before 3.6 wrote) — so hashes in exported RabbitMQ definitions can be
 * imported and checked unchanged. An empty hash means "no password": password logins fail.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** RabbitMQ's hashing module names → the node:crypto digest each one uses. */
const digestOf = {
  rabbit_password_hashing_sha256: 'sha256',
  rabbit_password_hashing_sha512: 'sha512',
  rabbit_password_hashing_md5: 'md5',
} as const;
export type HashingAlgorithm = keyof typeof digestOf;
export const hashingAlgorithm: HashingAlgorithm = 'rabbit_password_hashing_sha256';
/** RabbitMQ's salt is 32 bits (rabbit_password:generate_salt/0). */
const saltBytes = 4;

export function isHashingAlgorithm(name: string): name is HashingAlgorithm {
  return Object.hasOwn(digestOf, name);
}

export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

export interface User {
  name: string;
  passwordHash: string;
  /** How passwordHash was made; undefined = rabbit_password_hashing_sha256. */
  hashingAlgorithm?: HashingAlgorithm;
  tags: string[];
  /** vhost → permission regexes */
  permissions: Map<string, Permissions>;
}

export function hashPassword(password: string, salt: Buffer = randomBytes(saltBytes), algorithm: HashingAlgorithm = hashingAlgorithm): string {
  const digest = createHash(digestOf[algorithm]).update(salt).update(password, 'utf8').digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

export function checkPassword(password: string, passwordHash: string, algorithm: HashingAlgorithm = hashingAlgorithm): boolean {
  const raw = Buffer.from(passwordHash, 'base64');
  if (raw.length <= saltBytes) return false;
  const expected = Buffer.from(hashPassword(password, raw.subarray(0, saltBytes), algorithm), 'base64');
  return raw.length === expected.length && timingSafeEqual(raw, expected);
}

export class UserError extends Error {}

export class UserStore {
  readonly users = new Map<string, User>();

  add(name: string, password: string, tags: string[] = []): User {
    const u: User = { name, passwordHash: hashPassword(password), tags, permissions: new Map() };
    this.users.set(name, u);
    return u;
  }

  /** The user, or a UserError in rabbitmqctl's words. */
  get(name: string): User {
    const u = this.users.get(name);
    if (u === undefined) throw new UserError(`User "${name}" does not exist`);
    return u;
  }

  changePassword(name: string, password: string): void {
    const u = this.get(name);
    u.passwordHash = hashPassword(password);
    delete u.hashingAlgorithm;
  }

  /** The user if the password matches; undefined otherwise (unknown user or wrong password). */
  /** The user, or undefined: for a login whose credential is not a password (EXTERNAL). */
  find(name: string): User | undefined {
    return this.users.get(name);
  }

  authenticate(name: string, password: string): User | undefined {
    const u = this.users.get(name);
    if (u === undefined) return undefined;
    return checkPassword(password, u.passwordHash, u.hashingAlgorithm) ? u : undefined;
  }

  setPermissions(user: string, vhost: string, p: Permissions): void {
    this.get(user).permissions.set(vhost, p);
  }
}
