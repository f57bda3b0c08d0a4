/**
 * The cluster secret (RabbitMQ's Erlang cookie): from --cluster-secret / WARREN_CLUSTER_SECRET,
 * else the file DATA_DIR/.cluster-secret. There is no generated default: nodes that made up
 * their own secrets would refuse each other, which is worse than a clear error at start.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StartError } from './start-error.js';

/** Short secrets are guessable; RabbitMQ's generated cookies are 20 characters. */
export const clusterSecretMinChars = 16;

export class ClusterSecretError extends StartError {}

export function resolveClusterSecret(configured: string, dataDir: string): string {
  let secret = configured;
  const file = join(dataDir, '.cluster-secret');
  if (secret === '') {
    try {
      secret = readFileSync(file, 'utf8').trim();
    } catch {
      throw new ClusterSecretError(
        `cluster mode needs the cluster's shared secret: pass --cluster-secret, set WARREN_CLUSTER_SECRET, or write it to ${file} (the same value on every node; e.g. openssl rand -hex 16)`,
      );
    }
  }
  if (secret.length < clusterSecretMinChars) throw new ClusterSecretError(`the cluster secret must be at least ${clusterSecretMinChars} characters, got ${secret.length}`);
  return secret;
}
