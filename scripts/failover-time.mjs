#!/usr/bin/env node
// Quorum-queue failover time, measured the same way on a warren cluster and a RabbitMQ cluster:
// declare a quorum queue, run a confirming producer at a fixed rate on a node that does not lead
// it, SIGKILL the leader's process, and time kill → first positive confirm of a publish sent
// after the kill (nacked publishes are republished, as a client must). Then restart the killed
// node, delete the queue, and repeat.
//
//   node scripts/failover-time.mjs [--systems warren,rabbitmq] [--trials N] [--rate N]
//                                  [--leader-on any|controller|non-controller] [--json]
//
// warren:   the cluster of `npm run cluster:start` (state in $WARREN_CLUSTER_DIR or ./.cluster);
//           the leader is read from the queue's placement in etcd, its pid from state.json,
//           and the node is brought back with `scripts/cluster.mjs restart NODE`.
// rabbitmq: the cluster of scripts/rabbitmq-cluster.sh (port base $RABBIT_CLUSTER_PORT); the
//           leader from `rabbitmqctl list_queues name leader`, its beam pid from the node's pid
//           file, and `scripts/rabbitmq-cluster.sh restart N` brings it back.
// Both must be running; the script starts and stops neither cluster.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { connect } from 'amqplib';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

/** Confirms must be flowing this long before the kill, so the kill lands in a steady state. */
const warmupMs = 2000;
/** A failover slower than this is reported as a failure, not waited for. */
const failoverMaxMs = 30_000;
/** After the first confirm from the new leader, publishing goes on this long to see it is steady. */
const afterMs = 1000;
/** More unconfirmed than this and the producer pauses: at 500 msg/s it is 20 s of backlog. */
const unconfirmedMax = 10_000;
/** A restarted node is given this long to rejoin and catch up before the next trial. */
const settleMs = 3000;
/** Polling period while waiting for a leader to be known. */
const pollMs = 50;
const leaderKnownMaxMs = 15_000;

const usage = `usage: node scripts/failover-time.mjs [--systems warren,rabbitmq] [--trials N] [--rate N] [--leader-on WHERE] [--json]
  --systems LIST   which clusters to measure, in order (default warren,rabbitmq)
  --trials N       kills per system (default 3)
  --rate N         publishes per second (default 500; the figure's resolution is 1000/N ms)
  --leader-on W    warren only: declare each queue on the cluster controller ('controller') or on
                   another node ('non-controller'), so the killed leader is or is not also the
                   controller; 'any' (default) rotates the declaring node over the nodes
  --json           print the results as JSON too`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const progress = (text) => process.stderr.write(`  ${new Date().toISOString().slice(11, 23)} ${text}\n`);

function parseCommand(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      systems: { type: 'string' },
      trials: { type: 'string' },
      rate: { type: 'string' },
      'leader-on': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const systems = (values.systems ?? 'warren,rabbitmq').split(',');
  for (const s of systems) if (s !== 'warren' && s !== 'rabbitmq') throw new Error(`--systems: '${s}' is not warren or rabbitmq`);
  const int = (name, raw, fallback, min, max) => {
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} must be a whole number ${min}..${max}, got '${raw}'`);
    return Number(raw);
  };
  const leaderOn = values['leader-on'] ?? 'any';
  if (!['any', 'controller', 'non-controller'].includes(leaderOn)) throw new Error(`--leader-on: '${leaderOn}' is not any, controller or non-controller`);
  return { systems, trials: int('trials', values.trials, 3, 1, 50), rate: int('rate', values.rate, 500, 10, 10_000), leaderOn, json: values.json === true };
}

// ---------------------------------------------------------------- the two clusters

/** warren: nodes from state.json, leader from the queue's placement in etcd. */
async function warrenCluster() {
  const dir = resolve(process.env.WARREN_CLUSTER_DIR ?? join(repo, '.cluster'));
  const stateFile = join(dir, 'state.json');
  if (!existsSync(stateFile)) throw new Error(`no warren cluster state in ${stateFile}: npm run cluster:start first`);
  const readState = () => JSON.parse(readFileSync(stateFile, 'utf8'));
  const { Etcd3 } = await import('etcd3');
  const etcd = new Etcd3({ hosts: [readState().etcd.endpoint], dialTimeout: 2000 });
  const ns = etcd.namespace('/warren/warren/');
  const nodes = readState().nodes.map((n) => ({ name: n.name, url: `amqp://guest:guest@127.0.0.1:${n.ports.amqp}` }));
  return {
    system: 'warren',
    nodes,
    async leaderOf(queue) {
      const text = await ns.get(`queues/${encodeURIComponent('/')}/${encodeURIComponent(queue)}`).string();
      if (text === null) return undefined;
      const placement = JSON.parse(text);
      return { node: placement.leader, epoch: placement.epoch, isr: placement.isr };
    },
    /** The node holding the etcd election that makes it the failover controller. */
    async controller() {
      return ns.election('controller').leader().catch(() => undefined);
    },
    pidOf(node) {
      const n = readState().nodes.find((x) => x.name === node);
      if (n === undefined || typeof n.pid !== 'number') throw new Error(`warren node ${node} has no pid in ${stateFile}`);
      if (!readFileSync(`/proc/${n.pid}/cmdline`, 'utf8').includes('warren.js')) throw new Error(`pid ${n.pid} of ${node} is not a warren node`);
      return n.pid;
    },
    async restart(node) {
      await run(process.execPath, [join(repo, 'scripts', 'cluster.mjs'), 'restart', node], { env: { ...process.env, WARREN_CLUSTER_DIR: dir } });
    },
    close() {
      etcd.close();
    },
  };
}

/** RabbitMQ: nodes rbench1..3 of scripts/rabbitmq-cluster.sh, leader from rabbitmqctl. */
async function rabbitCluster() {
  const script = join(repo, 'scripts', 'rabbitmq-cluster.sh');
  const cli = async (...args) => (await run(script, args, { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  const urls = (await cli('urls')).split(',');
  const nodes = urls.map((url, index) => ({ name: `rbench${index + 1}@localhost`, url }));
  const indexOf = (node) => {
    const m = /^rbench(\d+)@/.exec(node);
    if (m === null) throw new Error(`'${node}' is not a node of scripts/rabbitmq-cluster.sh`);
    return m[1];
  };
  return {
    system: 'rabbitmq',
    nodes,
    async leaderOf(queue, askNode = nodes[0].name) {
      const rows = JSON.parse(await cli('ctl', indexOf(askNode), 'list_queues', 'name', 'leader', 'members', '--formatter', 'json', '-q'));
      const row = rows.find((r) => r.name === queue);
      return row === undefined || row.leader === '' ? undefined : { node: row.leader, members: row.members };
    },
    async pidOf(node) {
      return Number(await cli('pid', indexOf(node)));
    },
    /** RabbitMQ has no controller: every quorum queue elects its own leader through Raft. */
    async controller() {
      return undefined;
    },
    async restart(node) {
      await cli('restart', indexOf(node));
    },
    close() {},
  };
}

// ---------------------------------------------------------------- the producer

/**
 * Publishes sequence numbers at a fixed rate on a confirm channel, republishing what is nacked
 * and reconnecting (to the same node, else another live one) if the broker closes the channel.
 * Records, for each confirm, when the publish it answers was sent and when it came.
 */
class FixedRateProducer {
  constructor(urls, queue, rate) {
    this.urls = urls;
    this.queue = queue;
    this.intervalMs = 1000 / rate;
    this.events = []; // { sentAt, at, ok, republish }
    this.pending = 0;
    this.reconnects = [];
    this.stopped = false;
    this.listeners = new Set();
    /** Nacked publishes waiting to go again. */
    this.retry = [];
  }

  async start() {
    await this.open();
    this.loop = this.publishLoop();
  }

  async open() {
    let lastError;
    for (const url of this.urls) {
      try {
        const connection = await connect(url, { timeout: 5000 });
        connection.on('error', () => undefined);
        const channel = await connection.createConfirmChannel();
        channel.on('error', () => undefined);
        const generation = { connection, channel, closed: false, url };
        const onClose = () => {
          generation.closed = true;
        };
        channel.on('close', onClose);
        connection.on('close', onClose);
        this.current = generation;
        return;
      } catch (error) {
        lastError = error;
      }
    }
    throw new Error(`cannot connect to any of ${this.urls.join(', ')}: ${lastError?.message}`);
  }

  publish(sentAt, republish) {
    const generation = this.current;
    this.pending++;
    generation.channel.sendToQueue(this.queue, Buffer.alloc(256), { persistent: true }, (error) => {
      // amqplib fails every outstanding callback when the channel closes: that is not a nack.
      if (error != null && generation.closed) {
        this.pending--;
        this.events.push({ sentAt, at: performance.now(), ok: false, lost: true, republish });
        return;
      }
      this.pending--;
      const event = { sentAt, at: performance.now(), ok: error == null, lost: false, republish };
      this.events.push(event);
      if (!event.ok && !this.stopped) this.retry.push(performance.now());
      for (const listener of this.listeners) listener(event);
    });
  }

  async publishLoop() {
    const start = performance.now();
    let sent = 0;
    while (!this.stopped) {
      if (this.current.closed) {
        const at = performance.now();
        try {
          await this.open();
          this.reconnects.push({ at, ms: performance.now() - at, url: this.current.url });
        } catch {
          await sleep(100);
        }
        continue;
      }
      const due = start + sent * this.intervalMs;
      const now = performance.now();
      if (due > now) {
        await sleep(Math.max(1, Math.floor(due - now)));
        continue;
      }
      if (this.pending >= unconfirmedMax) {
        await sleep(1);
        continue;
      }
      // A nacked message goes again in the next slot, ahead of new ones; its time is the resend.
      const republish = this.retry.length > 0;
      if (republish) this.retry.shift();
      this.publish(now, republish);
      sent++;
    }
  }

  waitFor(predicate, timeoutMs) {
    return new Promise((resolvePromise) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        resolvePromise(undefined);
      }, timeoutMs);
      const listener = (event) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolvePromise(event);
      };
      this.listeners.add(listener);
    });
  }

  async stop() {
    this.stopped = true;
    await this.loop;
    await this.current.connection.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- one trial

async function withConnection(url, action) {
  const connection = await connect(url, { timeout: 5000 });
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await action(channel);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function waitForLeader(cluster, queue) {
  const deadline = Date.now() + leaderKnownMaxMs;
  for (;;) {
    const leader = await cluster.leaderOf(queue);
    if (leader !== undefined) return leader;
    if (Date.now() > deadline) throw new Error(`no leader known for ${queue} after ${leaderKnownMaxMs} ms`);
    await sleep(pollMs);
  }
}

/** The node to declare on: a queue's first leader is the node it was declared on, in both systems. */
async function declareNodeFor(cluster, leaderOn, number) {
  const rotate = cluster.nodes[(number - 1) % cluster.nodes.length];
  const controller = await cluster.controller();
  if (leaderOn === 'any' || controller === undefined) return rotate;
  const fits = cluster.nodes.filter((n) => (n.name === controller) === (leaderOn === 'controller'));
  return fits[(number - 1) % fits.length] ?? rotate;
}

async function trial(cluster, rate, leaderOn, number) {
  const queue = `failover-${randomBytes(3).toString('hex')}`;
  const declareNode = await declareNodeFor(cluster, leaderOn, number);
  await withConnection(declareNode.url, (channel) => channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } }));
  progress(`${cluster.system} trial ${number}: declared ${queue} on ${declareNode.name}`);
  const leader = await waitForLeader(cluster, queue);
  progress(`leader ${leader.node}`);
  const others = cluster.nodes.filter((n) => n.name !== leader.node);
  if (others.length === cluster.nodes.length) throw new Error(`leader '${leader.node}' is not one of ${cluster.nodes.map((n) => n.name).join(', ')}`);
  const producer = new FixedRateProducer(others.map((n) => n.url), queue, rate);
  await producer.start();
  const controller = await cluster.controller();
  const result = { trial: number, queue, leader: leader.node, leaderWasController: controller === undefined ? undefined : controller === leader.node, producerNode: others[0].name };
  try {
    await sleep(warmupMs);
    const warm = producer.events.filter((e) => e.ok).length;
    if (warm === 0) throw new Error(`no confirm in the ${warmupMs} ms warm-up`);
    const pid = await cluster.pidOf(leader.node);
    progress(`${warm} confirms in the warm-up; SIGKILL ${leader.node} (pid ${pid})`);
    const killAt = performance.now();
    const firstOk = producer.waitFor((e) => e.ok && e.sentAt > killAt, failoverMaxMs);
    process.kill(pid, 'SIGKILL');
    const event = await firstOk;
    progress(event === undefined ? 'no confirm from a new leader' : `confirm after ${ms(event.at - killAt)} ms`);
    await sleep(afterMs);
    const after = producer.events.filter((e) => e.at > killAt);
    const lastOkBefore = producer.events.filter((e) => e.ok && e.at <= killAt).at(-1);
    const firstAnyOk = after.find((e) => e.ok);
    const firstNack = after.find((e) => !e.ok && !e.lost);
    Object.assign(result, {
      killedPid: pid,
      failoverMs: event === undefined ? undefined : event.at - killAt,
      firstConfirmAnyMs: firstAnyOk === undefined ? undefined : firstAnyOk.at - killAt,
      firstNackMs: firstNack === undefined ? undefined : firstNack.at - killAt,
      lastConfirmBeforeKillMs: lastOkBefore === undefined ? undefined : killAt - lastOkBefore.at,
      nacks: after.filter((e) => !e.ok && !e.lost).length,
      lostToClose: after.filter((e) => e.lost).length,
      reconnects: producer.reconnects.map((r) => ({ atMs: r.at - killAt, ms: r.ms, url: r.url.replace(/:[^:@/]*@/, ':***@') })),
      newLeader: (await cluster.leaderOf(queue, others[0].name).catch(() => undefined))?.node,
    });
  } finally {
    await producer.stop();
  }
  progress(`restarting ${leader.node}`);
  await cluster.restart(leader.node);
  await sleep(settleMs);
  progress('deleting the queue');
  await withConnection(others[0].url, (channel) => channel.deleteQueue(queue)).catch((error) => {
    result.cleanup = `could not delete ${queue}: ${error.message}`;
  });
  return result;
}

// ---------------------------------------------------------------- report

const ms = (v) => (v === undefined ? '-' : v.toFixed(0));

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? undefined : sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function describeTrial(system, r) {
  if (r.error !== undefined) return `${system} trial ${r.trial}: FAILED: ${r.error}`;
  const reconnects = r.reconnects.length === 0 ? 'no reconnect' : r.reconnects.map((x) => `reconnect at +${ms(x.atMs)} ms took ${ms(x.ms)} ms`).join(', ');
  return (
    `${system} trial ${r.trial}: killed leader ${r.leader} (pid ${r.killedPid}${r.leaderWasController === true ? ', also the cluster controller' : ''}), producer on ${r.producerNode}, new leader ${r.newLeader ?? '?'}: ` +
    `kill → first confirm of a post-kill publish ${r.failoverMs === undefined ? `none within ${failoverMaxMs} ms` : `${ms(r.failoverMs)} ms`}` +
    ` (first confirm of any publish ${ms(r.firstConfirmAnyMs)} ms, first nack ${ms(r.firstNackMs)} ms, ${r.nacks} nacks, ${r.lostToClose} lost to a channel close, ${reconnects}` +
    `; last confirm before the kill ${ms(r.lastConfirmBeforeKillMs)} ms earlier)${r.cleanup === undefined ? '' : `; ${r.cleanup}`}`
  );
}

async function main() {
  let command;
  try {
    command = parseCommand(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n${usage}\n`);
    process.exit(2);
  }
  if (command === undefined) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const all = {};
  for (const system of command.systems) {
    const cluster = system === 'warren' ? await warrenCluster() : await rabbitCluster();
    const results = [];
    try {
      for (let number = 1; number <= command.trials; number++) {
        let r;
        try {
          r = await trial(cluster, command.rate, command.leaderOn, number);
        } catch (error) {
          r = { trial: number, error: error.message };
        }
        results.push(r);
        process.stdout.write(`${describeTrial(system, r)}\n`);
      }
    } finally {
      cluster.close();
    }
    all[system] = results;
  }
  process.stdout.write(`\nfailover (leader SIGKILL → first confirm of a publish sent after it), ${command.rate} msg/s, ${command.trials} trial(s)\n`);
  for (const [system, results] of Object.entries(all)) {
    const times = results.map((r) => r.failoverMs).filter((v) => v !== undefined);
    const failed = results.length - times.length;
    process.stdout.write(
      `  ${system.padEnd(9)} median ${ms(median(times))} ms, min ${ms(times.length ? Math.min(...times) : undefined)} ms, max ${ms(times.length ? Math.max(...times) : undefined)} ms` +
        ` [${times.map(ms).join(', ')}]${failed > 0 ? `, ${failed} trial(s) without a confirm` : ''}\n`,
    );
  }
  if (command.json) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
}

await main();
