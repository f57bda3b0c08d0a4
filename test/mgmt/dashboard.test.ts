/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core): it loads,
 * takes credentials on its login form, shows a declared queue, the queue's count changes
 * after a publish, every tab renders, and the page logs no console error. A screenshot of
 * the overview goes to test-output/dashboard.png (and one per tab beside it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { call, obj, startMgmtBroker, type MgmtBroker } from './mgmt-kit.js';

const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** dist/test/mgmt → the repository's test-output/ (gitignored). */
const outputDir = fileURLToPath(new URL('../../../test-output/', import.meta.url));
/** Bound on each wait for the page (it polls the API every 2 s here; the sampler samples every 5 s). */
const pageDeadlineMs = 20_000;

describe('dashboard', () => {
  let m: MgmtBroker;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    mkdirSync(outputDir, { recursive: true });
    m = await startMgmtBroker();
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
    page.setDefaultTimeout(pageDeadlineMs);
  });
  after(async () => {
    await browser?.close();
    await m?.stop();
  });

  test('logs in, shows a declared queue, and its count follows a publish', async () => {
    const conn = await amqp.connect(m.broker.url);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('dash-orders', { durable: true, arguments: { 'x-message-ttl': 600000 } });
    await ch.assertQueue('dash-audit', { durable: false });

    await page.goto(`${m.mgmt}/`);
    await page.waitForSelector('#login-form');
    // Poll quickly so the test does not wait on the default 5 s.
    await page.evaluate(() => localStorage.setItem('warren.refreshMs', '2000'));
    await page.fill('#login-username', 'guest');
    await page.fill('#login-password', 'guest');
    await page.click('#login-submit');
    await page.waitForSelector('#stat-ready .value');
    await page.waitForFunction(() => document.querySelector('#totals')?.textContent?.includes('Queues') === true);

    await page.click('#tabs a[data-view="queues"]');
    const readyCell = page.locator('#queues-table tr', { hasText: 'dash-orders' }).locator('td[data-col="messages_ready"]');
    await readyCell.waitFor();
    assert.equal((await readyCell.textContent())?.trim(), '0');

    for (let i = 0; i < 1234; i++) ch.sendToQueue('dash-orders', Buffer.from(`order ${i}`), { persistent: true });
    await ch.waitForConfirms();
    await page.waitForFunction(
      () => {
        const row = [...document.querySelectorAll('#queues-table tbody tr')].find((tr) => tr.textContent?.includes('dash-orders'));
        return row?.querySelector('td[data-col="messages_ready"]')?.textContent?.trim() === '1,234';
      },
      undefined,
      { timeout: pageDeadlineMs },
    );

    // The detail panel peeks at a message without taking it.
    await page.click('#queues-table a:text-is("dash-orders")');
    await page.waitForSelector('#qd-kv');
    await page.click('button:text-is("Get messages")');
    await page.waitForSelector('#qd-get-out .message');
    assert.match((await page.textContent('#qd-get-out')) ?? '', /order 0/);
    assert.equal(obj(await call(m.mgmt, '/api/queues/%2F/dash-orders'))['messages_ready'], 1234, 'a peek requeues');

    // Sorting by a number column puts the fuller queue first.
    await page.click('#queues-table th[data-col="messages_ready"]');
    const firstRow = await page.locator('#queues-table tbody tr').first().textContent();
    assert.match(firstRow ?? '', /dash-orders/);
    await conn.close();
  });

  test('every tab renders; the overview is worth a screenshot', async () => {
    // Some traffic so the overview has rates and the latency tab has curves.
    const conn = await amqp.connect(m.broker.url);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('dash-work', { durable: true });
    await ch.consume('dash-work', (msg) => {
      if (msg !== null) ch.ack(msg);
    });
    // A steady trickle while the tabs are visited: rates need two samples (5 s apart) to show.
    let n = 0;
    const trickle = setInterval(() => {
      for (let i = 0; i < 40; i++) ch.sendToQueue('dash-work', Buffer.from(`w${n++}`), { persistent: true });
    }, 100);
    for (const view of ['connections', 'channels', 'exchanges', 'latency', 'admin']) {
      await page.click(`#tabs a[data-view="${view}"]`);
      await page.waitForFunction((v) => document.querySelector(`#tabs a[data-view="${v}"]`)?.classList.contains('active') === true, view);
      await page.waitForFunction(() => /^Updated /.test(document.querySelector('#last-refresh')?.textContent ?? ''));
      await page.screenshot({ path: `${outputDir}dashboard-${view}.png`, fullPage: true });
    }
    assert.match((await page.textContent('#conn-slot')) ?? '', /amqplib/);
    await page.click('#tabs a[data-view="latency"]');
    await page.waitForFunction(() => document.querySelector('#stage-slot')?.textContent?.includes('publish → confirm') === true);

    await page.click('#tabs a[data-view="overview"]');
    // Wait for two samples, so the charts have lines to draw.
    await page.waitForFunction(() => !/^0\b/.test(document.querySelector('#stat-publish .value')?.textContent ?? '0'), undefined, { timeout: pageDeadlineMs });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${outputDir}dashboard.png`, fullPage: true });
    clearInterval(trickle);
    await ch.waitForConfirms();
    await conn.close();
    assert.deepEqual(consoleErrors, [], 'no console errors');
  });
});
