/**
 * A real, throwaway etcd for tests: one member on 127.0.0.1 with ephemeral client and peer
 * ports and its own temp data dir, started fresh per call and removed by stop(). kill() and
 * restart() take it down and bring it back on the same data dir and ports (an etcd outage).
 *
 * It runs with a short raft heartbeat and election timeout so that etcd honours 1 s leases
 * (etcd raises any TTL below 1.5 × its election timeout) and a lease-expiry test finishes in
 * about two seconds rather than five.
 */
import { after, before } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface TestEtcd {
  /** http://127.0.0.1:PORT — what the etcd3 client (and --etcd) takes. */
  endpoint: string;
  process: ChildProcess;
  dataDir: string;
  /** Everything etcd wrote (it logs to stderr), across restarts. */
  log(): string;
  /** Kills etcd and removes its data dir. */
  stop(): Promise<void>;
  /** SIGKILLs etcd and waits for it to exit; its data dir and ports stay for restart(). */
  kill(): Promise<void>;
  /** Starts etcd again, after kill(), on the same data dir and ports; resolves once it is healthy. */
  restart(): Promise<void>;
}

/** etcd on a 2-core machine under test load starts in well under a second; this is the outer bound. */
const startDeadlineMs = 15_000;
/** How often the start-up probe asks /health again. */
const probeIntervalMs = 20;
/** Raft tick (ms) and election timeout (ms); the lease minimum becomes ceil(1.5 × 250 ms) = 1 s. */
const heartbeatMs = 50;
const electionTimeoutMs = 250;

/** The etcd binary: on PATH, else Debian's /usr/bin/etcd; undefined when neither exists. */
export function findEtcd(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, 'etcd');
    if (existsSync(p)) return p;
  }
  return existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined;
}

/** A port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  srv.close();
  await once(srv, 'close');
  if (typeof addr !== 'object' || addr === null) throw new Error('could not read a bound port');
  return addr.port;
}

function healthy(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${endpoint}/health`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export async function startEtcd(): Promise<TestEtcd> {
  const bin = findEtcd();
  if (bin === undefined) throw new Error('etcd not found on PATH or at /usr/bin/etcd (Debian: apt-get install etcd-server)');
  const dataDir = await mkdtemp(join(tmpdir(), 'warren-etcd-'));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'test',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`,
    '--initial-cluster-state', 'new',
    '--heartbeat-interval', String(heartbeatMs),
    '--election-timeout', String(electionTimeoutMs),
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
  let output = '';
  let child: ChildProcess;
  let exited = false;
  let exit: Promise<void>;
  const launch = (): void => {
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child = c;
    exited = false;
    exit = once(c, 'exit').then(() => {
      exited = true;
    });
  };
  const kill = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
  };
  const stop = async (): Promise<void> => {
    await kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  /** Polls /health until etcd answers; on failure runs onFail (which kills it) and throws. */
  const whenHealthy = async (onFail: () => Promise<void>): Promise<void> => {
    const start = Date.now();
    for (;;) {
      if (exited) {
        await onFail();
        throw new Error(`etcd exited during start-up:\n${output}`);
      }
      if (await healthy(endpoint)) return;
      if (Date.now() - start > startDeadlineMs) {
        await onFail();
        throw new Error(`etcd did not become healthy within ${startDeadlineMs} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, probeIntervalMs));
    }
  };
  launch();
  await whenHealthy(stop);
  return {
    endpoint,
    get process() {
      return child;
    },
    dataDir,
    log: () => output,
    stop,
    kill,
    async restart() {
      if (!exited) throw new Error(`etcd restart: it is still running (pid ${child.pid}); kill() it first`);
      // The data dir already holds the member: etcd ignores the --initial-cluster* flags and recovers from it.
      launch();
      await whenHealthy(kill);
    },
  };
}

/**
 * One etcd for the tests of the enclosing describe block: started before them; after them,
 * the closers the tests pushed onto `cleanup` run in order, then etcd stops.
 */
export function etcdForSuite(): { readonly endpoint: string; readonly cleanup: (() => Promise<void>)[] } {
  let etcd: TestEtcd | undefined;
  const cleanup: (() => Promise<void>)[] = [];
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const c of cleanup) await c();
    await etcd?.stop();
  });
  return {
    get endpoint(): string {
      if (etcd === undefined) throw new Error('etcdForSuite: etcd is not started yet (use it inside a test)');
      return etcd.endpoint;
    },
    cleanup,
  };
}
