/**
 * Bad requests to the management API get RabbitMQ's answers and never take the node down:
 * missing and wrong credentials (401 + WWW-Authenticate), a user without the tag (401
 * not_authorised, as RabbitMQ — not 403), unknown objects (404 Object Not Found), malformed
 * bodies (400 with a reason), unsupported media types, path traversal, oversized bodies
 * (413, connection closed) and garbage on the socket. After each, the node still answers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { basic, call, obj, rawHttp, startMgmtBroker, statusOf, type MgmtBroker } from './mgmt-kit.js';

describe('management API errors', () => {
  let m: MgmtBroker;
  const api = (path: string, opts?: Parameters<typeof call>[2]) => call(m.mgmt, path, opts);
  const stillUp = async (): Promise<void> => {
    const r = await api('/api/overview');
    assert.equal(r.status, 200, 'the node still answers');
  };

  before(async () => {
    m = await startMgmtBroker();
    await api('/api/users/mgmt-only', { method: 'PUT', body: { password: 'pw', tags: 'management' } });
    await api('/api/users/no-tags', { method: 'PUT', body: { password: 'pw', tags: '' } });
    await api('/api/users/monitor', { method: 'PUT', body: { password: 'pw', tags: 'monitoring' } });
  });
  after(async () => {
    await stillUp();
    await m.stop();
  });

  test('401 without credentials and with wrong ones, with a WWW-Authenticate challenge', async () => {
    for (const auth of [null, basic('guest', 'wrong'), basic('nobody', 'x'), 'Basic !!!not-base64', 'Bearer token']) {
      const r = await api('/api/overview', { auth });
      assert.equal(r.status, 401, `auth ${String(auth)}`);
      assert.deepEqual(obj(r), { error: 'not_authorized', reason: 'Not_Authorized' });
      assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    }
    // The dashboard's own requests get no challenge (no browser login pop-up).
    const ui = await api('/api/overview', { auth: basic('guest', 'wrong'), headers: { 'X-Requested-With': 'XMLHttpRequest' } });
    assert.equal(ui.status, 401);
    assert.equal(ui.headers.get('www-authenticate'), null);
  });

  test("tags: RabbitMQ's rules, refused with 401 not_authorised and its reasons", async () => {
    const noTags = await api('/api/overview', { auth: basic('no-tags', 'pw') });
    assert.equal(noTags.status, 401);
    assert.deepEqual(obj(noTags), { error: 'not_authorised', reason: 'Not management user' });
    const mgmt = basic('mgmt-only', 'pw');
    assert.equal((await api('/api/overview', { auth: mgmt })).status, 200);
    for (const [path, reason] of [
      ['/api/users', 'Not administrator user'],
      ['/api/definitions', 'Not administrator user'],
      ['/api/permissions', 'Not administrator user'],
      ['/api/nodes', 'Not monitor user'],
      ['/api/latency', 'Not monitor user'],
    ] as const) {
      const r = await api(path, { auth: mgmt });
      assert.equal(r.status, 401, path);
      assert.deepEqual(obj(r), { error: 'not_authorised', reason }, path);
    }
    assert.equal((await api('/api/vhosts/x', { method: 'PUT', auth: mgmt })).status, 401);
    const monitor = basic('monitor', 'pw');
    assert.equal((await api('/api/nodes', { auth: monitor })).status, 200);
    assert.equal((await api('/api/queues/%2F', { auth: monitor })).status, 200, 'monitors see every vhost');
    assert.equal((await api('/api/queues/%2F/q', { method: 'PUT', body: {}, auth: monitor })).status, 401, 'but act only where permitted');
    assert.equal((await api('/api/users', { auth: monitor })).status, 401);
  });

  test('404 Object Not Found for unknown vhosts, objects and paths', async () => {
    for (const path of ['/api/queues/no-vhost', '/api/queues/%2F/no-queue', '/api/exchanges/%2F/no-x', '/api/vhosts/none', '/api/users/none', '/api/nope', '/api/queues/%2F/no-queue/bindings', '/nope.html']) {
      const r = await api(path);
      assert.equal(r.status, 404, path);
      assert.deepEqual(obj(r), { error: 'Object Not Found', reason: 'Not Found' }, path);
    }
    assert.equal((await api('/api/queues/no-vhost/q', { method: 'PUT', body: {} })).status, 404);
    assert.equal((await api('/api/exchanges/%2F/no-x/publish', { method: 'POST', body: { routing_key: '', payload: '' } })).status, 404);
    assert.equal((await api('/api/queues/%2F/no-queue/get', { method: 'POST', body: { count: 1, ackmode: 'ack_requeue_true' } })).status, 404);
  });

  test('405 for a method a path does not take', async () => {
    const r = await api('/api/overview', { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.match(r.headers.get('allow') ?? '', /GET/);
  });

  test('400 with a reason for malformed bodies and invalid arguments', async () => {
    const bodies: [string, RegExp][] = [
      ['{"durable": tru', /invalid JSON/],
      ['[1, 2]', /must be a JSON object/],
      ['"{\\"durable\\":true}"', /doubly-JSON-encoded/],
      ['{"durable": "sometimes"}', /durable must be true or false/],
      ['{"arguments": "x"}', /arguments must be a JSON object/],
      ['{"arguments": {"x-max-length": "ten"}}', /invalid arg 'x-max-length' for queue 'bad' in vhost '\/': "expected integer, got longstr"/],
      ['{"arguments": {"x-overflow": "sideways"}}', /invalid arg 'x-overflow'/],
      ['{"arguments": {"x-dead-letter-routing-key": "k"}}', /routing_key_but_no_dlx_defined/],
      [`{"arguments": {"deep": ${'['.repeat(200)}${']'.repeat(200)}}}`, /nest deeper/],
    ];
    for (const [body, reason] of bodies) {
      const r = await api('/api/queues/%2F/bad', { method: 'PUT', body, headers: { 'Content-Type': 'application/json' } });
      assert.equal(r.status, 400, body);
      assert.equal(obj(r)['error'], 'bad_request', body);
      assert.match(String(obj(r)['reason']), reason, body);
    }
    assert.equal((await api('/api/queues/%2F/bad')).status, 404, 'no bad request created anything');
    // An empty body is {} (as RabbitMQ); curl -d sends form-urlencoded: the JSON is still read.
    assert.equal((await api('/api/queues/%2F/form-q', { method: 'PUT', body: '{"durable":true}', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } })).status, 201);
    assert.equal(obj(await api('/api/queues/%2F/form-q'))['durable'], true);
    // Redeclaring with other properties: RabbitMQ's precondition text.
    const redeclare = await api('/api/queues/%2F/form-q', { method: 'PUT', body: { durable: false } });
    assert.equal(redeclare.status, 400);
    assert.equal(obj(redeclare)['reason'], "inequivalent arg 'durable' for queue 'form-q' in vhost '/': received 'false' but current is 'true'");
    // Reserved names, bad get and publish requests.
    assert.equal((await api('/api/queues/%2F/amq.mine', { method: 'PUT', body: {} })).status, 401);
    const get = await api('/api/queues/%2F/form-q/get', { method: 'POST', body: { count: 1, ackmode: 'maybe' } });
    assert.equal(get.status, 400);
    assert.match(String(obj(get)['reason']), /ackmode/);
    assert.equal((await api('/api/queues/%2F/form-q/get', { method: 'POST', body: { count: 0, ackmode: 'ack_requeue_true' } })).status, 400);
    const pubs: [unknown, RegExp][] = [
      [{ payload: 'x' }, /routing_key/],
      [{ routing_key: 'form-q', payload: 'x', payload_encoding: 'rot13' }, /payload_encoding/],
      [{ routing_key: 'form-q', payload: '@@@', payload_encoding: 'base64' }, /base64/],
      [{ routing_key: 'form-q', payload: 'x', properties: { delivery_mode: 3 } }, /delivery_mode/],
      [{ routing_key: 'form-q', payload: 'x', properties: { expiration: 'soon' } }, /expiration/],
      [{ routing_key: 'form-q', payload: 'x', properties: { colour: 'red' } }, /unknown message property 'colour'/],
      [{ routing_key: 'k'.repeat(256), payload: 'x' }, /routing key/],
    ];
    for (const [body, reason] of pubs) {
      const r = await api('/api/exchanges/%2F/amq.default/publish', { method: 'POST', body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(String(obj(r)['reason']), reason, JSON.stringify(body));
    }
    const longName = await api(`/api/queues/%2F/${'n'.repeat(256)}`, { method: 'PUT', body: {} });
    assert.equal(longName.status, 400);
  });

  test('415 for a multipart body; other content types are read as JSON or refused as such', async () => {
    const multipart = await api('/api/definitions', { method: 'POST', body: '--x\r\n\r\n{}\r\n--x--', headers: { 'Content-Type': 'multipart/form-data; boundary=x' } });
    assert.equal(multipart.status, 415);
    const xml = await api('/api/queues/%2F/xml-q', { method: 'PUT', body: '<queue durable="true"/>', headers: { 'Content-Type': 'application/xml' } });
    assert.equal(xml.status, 400);
    assert.match(String(obj(xml)['reason']), /invalid JSON/);
  });

  test('vhost names with %2F and other escapes round-trip', async () => {
    assert.equal((await api('/api/vhosts/a%2Fb%20c', { method: 'PUT' })).status, 201);
    assert.equal((await api('/api/permissions/a%2Fb%20c/guest', { method: 'PUT', body: { configure: '.*', write: '.*', read: '.*' } })).status, 201);
    assert.equal((await api('/api/queues/a%2Fb%20c/q%2Fslash', { method: 'PUT', body: {} })).status, 201);
    const q = obj(await api('/api/queues/a%2Fb%20c/q%2Fslash'));
    assert.equal(q['vhost'], 'a/b c');
    assert.equal(q['name'], 'q/slash');
    assert.equal((await api('/api/queues/a%2Fb%20c/%E0%A4%A', { method: 'GET' })).status, 400, 'malformed percent-encoding');
  });

  test('path traversal is refused, and never reaches a file', async () => {
    for (const path of ['/api/queues/%2F/..', '/api/queues/%2F/%2e%2e', '/api/../../etc/passwd', '/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/dashboard.js/../../package.json']) {
      const raw = await rawHttp(m.mgmtPort, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n`);
      const status = statusOf(raw);
      assert.ok(status === 400 || status === 404, `${path} → ${status}`);
      assert.doesNotMatch(raw, /root:|"name": "warren"/, `${path} leaked a file`);
    }
    assert.equal(statusOf(await rawHttp(m.mgmtPort, 'GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n')), 400);
    await stillUp();
  });

  test('an oversized or unbounded body is refused (413, 411) and the connection closed', async () => {
    const nineMiB = 9 * 1024 * 1024;
    // Declared too large: refused before a byte of the body is read.
    const declared = await rawHttp(m.mgmtPort, `PUT /api/queues/%2F/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nContent-Length: ${nineMiB}\r\n\r\n`);
    assert.equal(statusOf(declared), 413);
    // A chunked body could grow without a declared bound: refused with 411 before it is read.
    const chunked = await rawHttp(m.mgmtPort, 'PUT /api/queues/%2F/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}  \r\n');
    assert.equal(statusOf(chunked), 411);
    assert.equal((await api('/api/queues/%2F/big')).status, 404);
    await stillUp();
  });

  test('garbage and half requests on the socket do not disturb the node', async () => {
    await rawHttp(m.mgmtPort, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0xff, 0xfe]), 1_000);
    await rawHttp(m.mgmtPort, 'NOT AN HTTP REQUEST\r\n\r\n', 1_000);
    await rawHttp(m.mgmtPort, `GET /api/overview HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(100_000)}\r\n\r\n`, 1_000);
    // A client that sends half a body and goes away.
    const s = connect(m.mgmtPort, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.write('PUT /api/queues/%2F/half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"dur', () => resolve()));
    s.destroy();
    await stillUp();
    assert.equal((await api('/api/queues/%2F/half')).status, 404);
  });
});
