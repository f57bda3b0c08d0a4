import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { runBench } from '../../src/bench/bench-main.js';

const benchEntry = new URL('../../src/cli/bench.js', import.meta.url).pathname;

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [benchEntry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bench command line', () => {
  it('exits 2 with a clear message on an unknown flag', async () => {
    const result = await runCli(['--producers', '1', '--bogus']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^bench: unknown flag '--bogus'\n/);
    assert.match(result.stderr, /--help/);
    assert.equal(result.stdout, '');
  });

  it('exits 2 on a bad value', async () => {
    const result = await runCli(['--size', '4']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--size 4 is below 8 bytes/);
  });

  it('prints the flags for --help and exits 0', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    for (const flag of ['--url', '--compare', '--rounds', '--producers', '--consumers', '--queues', '--queue-args', '--exchange-type', '--routing-key', '--size', '--rate', '--confirm', '--persistent', '--prefetch', '--multi-ack', '--autoack', '--nagle', '--duration', '--pmessages', '--json', '--hgrm', '--plot', '--threads']) {
      assert.ok(result.stdout.includes(flag), `help mentions ${flag}`);
    }
  });

  it('exits 1 naming the broker when nothing listens at --url', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    let stderr = '';
    const code = await runBench(['--url', `amqp://guest:secret@127.0.0.1:${port}`, '--duration', '1'], {
      stdout: () => undefined,
      stderr: (text) => (stderr += text),
    });
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot connect to amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.ok(!stderr.includes('secret'));
  });
});
