/**
 * The node's definitions file (data-dir/definitions.json): durable vhosts, users,
 * permissions, policies, exchanges, queues (with their shard placement) and bindings,
 * rewritten atomically whenever they change. Writes coalesce: at most one in flight, and
 * callers that changed something meanwhile wait for the next one.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../store/definitions-file.js';
import type { Broker } from '../front/broker.js';
import { exportDefinitions, importDefinitions, type Definitions } from '../front/definitions.js';
import type { Logger } from './logger.js';

export const definitionsFileName = 'definitions.json';

export class DefinitionsFile {
  private readonly path: string;
  private inFlight: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(
    dataDir: string,
    private readonly broker: Broker,
    private readonly log: Logger,
  ) {
    this.path = join(dataDir, definitionsFileName);
  }

  /** Loads the file into the broker; false when there is none (a fresh node). */
  async load(): Promise<boolean> {
    const d = await readJsonFile<Definitions>(this.path);
    if (d === undefined) return false;
    importDefinitions(this.broker, d);
    return true;
  }

  save(): Promise<void> {
    if (this.inFlight === undefined) {
      this.inFlight = this.write().finally(() => {
        this.inFlight = undefined;
      });
      return this.inFlight;
    }
    this.next ??= this.inFlight.then(() => {
      this.next = undefined;
      return this.save();
    });
    return this.next;
  }

  private async write(): Promise<void> {
    const json = JSON.stringify(exportDefinitions(this.broker, true), null, 1);
    try {
      await writeFileAtomic(this.path, json);
    } catch (err) {
      this.log.error(`could not write ${this.path}: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }
}
