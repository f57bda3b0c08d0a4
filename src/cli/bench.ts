#!/usr/bin/env node
// Entry point of `npm run bench`; `warren bench ARGS` can call runBench from ../bench/bench-main.js the same way.
import { runBench } from '../bench/bench-main.js';

// `npm run bench | head` closes stdout early; that is the reader's choice, not a failure.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

let interrupted = false;
process.on('SIGINT', () => {
  // The first Ctrl-C ends the current run cleanly (queues deleted, report printed); the second quits.
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('bench: stopping after this run (Ctrl-C again to quit at once)\n');
});

process.exitCode = await runBench(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stopRequested: () => interrupted,
});
