/**
 * Policies set with warrenctl apply to existing and new queues, with RabbitMQ's precedence:
 * for message-ttl, expires, max-length and max-length-bytes the lower of policy and argument
 * wins; for dead-letter-exchange (and the other string keys) the queue's argument wins. The
 * highest-priority matching policy is the one that applies; clearing it lifts its limits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { bodies, consumeInto, deaths, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { ctl, ctlOk, ctlRows, queueCounts } from '../helpers/warrenctl.js';

describe('policies', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startBroker();
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  async function setPolicy(name: string, pattern: string, definition: object, ...more: string[]): Promise<void> {
    await ctlOk(broker.dataDir, 'set_policy', name, pattern, JSON.stringify(definition), '--apply-to', 'queues', ...more);
  }

  test('a policy applies to an existing queue at once and to queues declared later', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-len');
    const existing = `${prefix}.existing`;
    await ch.assertQueue(existing, { exclusive: true });
    for (const b of ['1', '2', '3', '4', '5']) await publishConfirmed(ch, '', existing, b);
    await setPolicy(`${prefix}-policy`, `^${prefix}\\.`, { 'max-length': 2 });
    // RabbitMQ trims an existing queue as soon as the policy applies (drop-head).
    await waitFor(async () => (await queueCounts(broker.dataDir, existing))?.messages === 2, 'the existing queue trimmed to 2');
    assert.deepEqual(bodies(await drain(ch, existing)), ['4', '5']);
    const later = `${prefix}.later`;
    await ch.assertQueue(later, { exclusive: true });
    for (const b of ['a', 'b', 'c']) await publishConfirmed(ch, '', later, b);
    assert.deepEqual(bodies(await drain(ch, later)), ['b', 'c']);
    const rows = await ctlRows(broker.dataDir, 'list_queues', 'name', 'policy');
    assert.deepEqual(rows.filter((r) => String(r['name']).startsWith(prefix)).map((r) => r['policy']), [`${prefix}-policy`, `${prefix}-policy`]);
    // Clearing the policy lifts the limit.
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-policy`);
    for (const b of ['x', 'y', 'z']) await publishConfirmed(ch, '', later, b);
    assert.deepEqual(bodies(await drain(ch, later)), ['x', 'y', 'z']);
    await ch.close();
  });

  test('max-length: the lower of policy and argument applies, either way round', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-min');
    await setPolicy(`${prefix}-policy`, `^${prefix}\\.`, { 'max-length': 2 });
    const argHigher = `${prefix}.arg5`;
    const argLower = `${prefix}.arg1`;
    await ch.assertQueue(argHigher, { exclusive: true, maxLength: 5 });
    await ch.assertQueue(argLower, { exclusive: true, maxLength: 1 });
    for (const b of ['1', '2', '3', '4', '5', '6']) {
      await publishConfirmed(ch, '', argHigher, b);
      await publishConfirmed(ch, '', argLower, b);
    }
    assert.deepEqual(bodies(await drain(ch, argHigher)), ['5', '6']);
    assert.deepEqual(bodies(await drain(ch, argLower)), ['6']);
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-policy`);
    await ch.close();
  });

  test('message-ttl: the lower of policy and argument applies', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-ttl');
    await setPolicy(`${prefix}-policy`, `^${prefix}\\.`, { 'message-ttl': 20 });
    const q = `${prefix}.q`;
    // The argument says a minute; the policy's 20 ms wins.
    await ch.assertQueue(q, { exclusive: true, messageTtl: 60_000 });
    await publishConfirmed(ch, '', q, 'short');
    await waitFor(async () => (await queueCounts(broker.dataDir, q))?.messages === 0, 'the message to expire under the policy TTL');
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-policy`);
    await ch.close();
  });

  test('dead-letter-exchange: the argument wins over the policy; the policy fills in when there is no argument', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-dlx');
    const argDlx = `${prefix}-arg-dlx`;
    const polDlx = `${prefix}-pol-dlx`;
    const sinks: Record<string, Awaited<ReturnType<typeof consumeInto>>> = {};
    for (const x of [argDlx, polDlx]) {
      await ch.assertExchange(x, 'fanout', { autoDelete: true });
      const { queue } = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(queue, x, '');
      sinks[x] = await consumeInto(ch, queue);
    }
    await setPolicy(`${prefix}-policy`, `^${prefix}\\.`, { 'dead-letter-exchange': polDlx });
    const withArg = `${prefix}.with-arg`;
    const without = `${prefix}.without`;
    await ch.assertQueue(withArg, { exclusive: true, deadLetterExchange: argDlx });
    await ch.assertQueue(without, { exclusive: true });
    await publishConfirmed(ch, '', withArg, 'to-arg-dlx', { expiration: '0' });
    await publishConfirmed(ch, '', without, 'to-policy-dlx', { expiration: '0' });
    const [a] = await (sinks[argDlx] as Awaited<ReturnType<typeof consumeInto>>).inbox.atLeast(1);
    const [p] = await (sinks[polDlx] as Awaited<ReturnType<typeof consumeInto>>).inbox.atLeast(1);
    assert.equal(a?.content.toString(), 'to-arg-dlx');
    assert.equal(p?.content.toString(), 'to-policy-dlx');
    assert.equal(deaths(p as amqp.ConsumeMessage)[0]?.queue, without);
    assert.equal(sinks[argDlx]?.inbox.items.length, 1);
    assert.equal(sinks[polDlx]?.inbox.items.length, 1);
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-policy`);
    await ch.close();
  });

  test('of two matching policies the higher priority applies; apply-to exchanges does not touch queues', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-prio');
    await setPolicy(`${prefix}-low`, `^${prefix}`, { 'max-length': 3 }, '--priority', '1');
    await setPolicy(`${prefix}-high`, `^${prefix}\\.q`, { 'max-length': 1 }, '--priority', '5');
    await ctlOk(broker.dataDir, 'set_policy', `${prefix}-exchanges`, `^${prefix}`, '{"alternate-exchange":"x"}', '--apply-to', 'exchanges', '--priority', '9');
    const q = `${prefix}.q`;
    await ch.assertQueue(q, { exclusive: true });
    for (const b of ['1', '2', '3']) await publishConfirmed(ch, '', q, b);
    assert.deepEqual(bodies(await drain(ch, q)), ['3']);
    const rows = await ctlRows(broker.dataDir, 'list_queues', 'name', 'policy', 'effective_policy_definition');
    assert.deepEqual(rows.find((r) => r['name'] === q), { name: q, policy: `${prefix}-high`, effective_policy_definition: { 'max-length': 1 } });
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-high`);
    for (const b of ['4', '5', '6', '7']) await publishConfirmed(ch, '', q, b);
    assert.deepEqual(bodies(await drain(ch, q)), ['5', '6', '7']);
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-low`);
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-exchanges`);
    await ch.close();
  });

  test('policy overflow reject-publish and expires apply from a policy too', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('pol-more');
    await setPolicy(`${prefix}-policy`, `^${prefix}\\.`, { 'max-length': 1, overflow: 'reject-publish' });
    const q = `${prefix}.q`;
    await ch.assertQueue(q, { exclusive: true });
    assert.equal(await publishConfirmed(ch, '', q, 'in'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'out'), 'nack');
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-policy`);
    await setPolicy(`${prefix}-expires`, `^${prefix}\\.`, { expires: 100 });
    const e = `${prefix}.expiring`;
    await ch.assertQueue(e);
    await waitFor(async () => (await queueCounts(broker.dataDir, e)) === undefined, 'the queue to expire under the policy', 10_000);
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-expires`);
    await ch.close();
  });

  test('invalid policies are refused with rabbitmqctl-style errors', async () => {
    const badPattern = await ctl(broker.dataDir, 'set_policy', 'bad', '[unclosed', '{"max-length":1}');
    assert.equal(badPattern.code, 65);
    assert.match(badPattern.stderr, /^Error:\nValidation failed\n\npattern should be regular expression but is invalid: /);
    const badValue = await ctl(broker.dataDir, 'set_policy', 'bad', '.*', '{"max-length":-1}');
    assert.equal(badValue.code, 65);
    assert.match(badValue.stderr, /-1 is not a valid maximum length/);
    const badKey = await ctl(broker.dataDir, 'set_policy', 'bad', '.*', '{"x-max-length":1}');
    assert.match(badKey.stderr, /\[\{<<"x-max-length">>,1\}\] are not recognised policy settings/);
    const badTtl = await ctl(broker.dataDir, 'set_policy', 'bad', '.*', '{"message-ttl":"soon"}');
    assert.match(badTtl.stderr, /<<"soon">> is not a valid message TTL/);
    const badApply = await ctl(broker.dataDir, 'set_policy', 'bad', '.*', '{"max-length":1}', '--apply-to', 'nothing');
    assert.match(badApply.stderr, /apply-to 'nothing' unrecognised/);
    const badJson = await ctl(broker.dataDir, 'set_policy', 'bad', '.*', '{max-length:1}');
    assert.equal(badJson.code, 65);
    const rows = await ctlRows(broker.dataDir, 'list_policies');
    assert.equal(rows.filter((r) => r['name'] === 'bad').length, 0);
  });
});
