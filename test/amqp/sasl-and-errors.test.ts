import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmqpError, fitReplyText } from '../../src/amqp/errors.js';
import { parseAmqplain, parsePlain } from '../../src/amqp/sasl.js';
import { PROTOCOL_HEADER } from '../../src/amqp/constants.js';
import { encodeTable, tableFromJs } from '../../src/amqp/field-table.js';

test('PLAIN: authzid NUL user NUL pass', () => {
  assert.deepEqual(parsePlain(Buffer.from('\0guest\0guest')), { username: 'guest', password: 'guest' });
  assert.deepEqual(parsePlain(Buffer.from('\0ü\0')), { username: 'ü', password: '' });
  assert.deepEqual(parsePlain(Buffer.from('bob\0bob\0s3cret')), { username: 'bob', password: 's3cret' });
  assert.equal(parsePlain(Buffer.from('admin\0bob\0s3cret')), undefined, 'acting as another identity is refused');
  assert.equal(parsePlain(Buffer.from('guest\0guest')), undefined);
  assert.equal(parsePlain(Buffer.from('\0guest\0gu\0est')), undefined);
  assert.equal(parsePlain(Buffer.from('\0\0pass')), undefined);
  assert.equal(parsePlain(Buffer.alloc(0)), undefined);
});

test('AMQPLAIN: table entries without the length prefix, LOGIN and PASSWORD as longstr', () => {
  const body = encodeTable(tableFromJs({ LOGIN: 'guest', PASSWORD: 'secret' })).subarray(4);
  assert.deepEqual(parseAmqplain(body), { username: 'guest', password: 'secret' });
  const withLength = encodeTable(tableFromJs({ LOGIN: 'guest', PASSWORD: 'secret' }));
  assert.equal(parseAmqplain(withLength), undefined, 'a length prefix is not a table entry');
  assert.equal(parseAmqplain(encodeTable(tableFromJs({ LOGIN: 'guest' })).subarray(4)), undefined);
  assert.equal(parseAmqplain(encodeTable(tableFromJs({ LOGIN: 'guest', PASSWORD: 5 })).subarray(4)), undefined);
  assert.equal(parseAmqplain(Buffer.from([5, 0x4c, 0x4f])), undefined);
});

test('AmqpError.of builds RabbitMQ-style reply texts cut to 255 bytes', () => {
  const e = AmqpError.of(404, "no queue 'q' in vhost '/'", 50, 10);
  assert.equal(e.replyText, "NOT_FOUND - no queue 'q' in vhost '/'");
  assert.equal(e.message, e.replyText);
  assert.equal(e.classId, 50);
  assert.equal(e.methodId, 10);
  assert.ok(e instanceof Error);
  const long = AmqpError.of(406, 'é'.repeat(300));
  assert.ok(Buffer.byteLength(long.replyText) <= 255);
  assert.ok(long.replyText.startsWith('PRECONDITION_FAILED - éé'));
  assert.ok(!long.replyText.includes('\ufffd'), 'no character split');
  assert.equal(fitReplyText('short'), 'short');
  assert.equal(Buffer.byteLength(fitReplyText('😀'.repeat(100))), 252);
  const moved = new AmqpError(501, 'x').withMethod((60 << 16) | 40);
  assert.deepEqual([moved.replyCode, moved.classId, moved.methodId], [501, 60, 40]);
});

test('the protocol header is AMQP 0-9-1', () => {
  assert.deepEqual([...PROTOCOL_HEADER], [0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);
});
