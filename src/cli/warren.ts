#!/usr/bin/env -S node --v8-pool-size=1
/** `warren` / `npm start`: runs one broker node until SIGTERM or SIGINT. */
import { ConfigError, loadConfig, usage } from '../node/config.js';
import { startNode } from '../node/node.js';
import { StartError } from '../node/start-error.js';
import { ForgottenError } from '../cluster/control-plane.js';

async function main(): Promise<void> {
  if (process.argv[2] === 'bench') {
    // `warren bench ARGS` is `npm run bench -- ARGS`: the bundled load generator.
    process.argv.splice(2, 1);
    await import('./bench.js');
    return;
  }
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`warren: ${err.message}\n\n${usage()}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (config === 'help') {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const node = await startNode(config);
  const shutdown = (signal: string): void => {
    node.log.info(`received ${signal}`);
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        node.log.error(`stop failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  // The one line scripts and tests wait for: the node accepts connections at this address.
  // Printed after the handlers are in place, so a SIGTERM sent on seeing it stops the node cleanly.
  process.stdout.write(`${node.url}\n`);
  if (node.tlsUrl !== undefined) process.stdout.write(`${node.tlsUrl}\n`);
}

main().catch((err: unknown) => {
  // An operator's mistake gets its message; anything else (a bug) its stack too.
  const known = err instanceof StartError || err instanceof ForgottenError;
  process.stderr.write(`warren: failed to start: ${err instanceof Error ? (known ? err.message : (err.stack ?? err.message)) : String(err)}\n`);
  process.exit(1);
});
