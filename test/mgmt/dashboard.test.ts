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
import { waitFor } from '../helpers/broker.js';
import { call, obj, startMgmtBroker, type MgmtBroker } from './mgmt-kit.js';

const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** dist/test/mgmt → the repository's test-output/ (gitignored). */
const outputDir = fileURLToPath(new URL('../../../test-output/', import.meta.url));
/** Bound on each wait for the page (it polls the API every 2 s here; the sampler samples every 5 s). */
const pageDeadlineMs = 20_000;

/**
 * The little of the DOM the page-side predicates use. They run in the browser (serialised by
 * playwright), so they are functions, not strings: the page's CSP forbids eval.
 */
interface El {
  textContent: string | null;
  firstChild: El | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El>;
}
interface Win {
  document: El;
  scrollTo(x: number, y: number): void;
}

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
    await page.fill('#login-username', 'guest');
    await page.fill('#login-password', 'guest');
    await page.click('#login-submit');
    await page.waitForSelector('#stat-ready .value');
    // Poll every 2 s rather than 5 (the choice is the page's own control).
    await page.selectOption('#refresh-interval', '2000');
    await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#totals')?.textContent?.includes('Queues') === true);

    await page.click('#tabs a[data-view="queues"]');
    const readyCell = page.locator('#queues-table tr', { hasText: 'dash-orders' }).locator('td[data-col="messages_ready"]');
    await readyCell.waitFor();
    assert.equal((await readyCell.textContent())?.trim(), '0');

    for (let i = 0; i < 1234; i++) ch.sendToQueue('dash-orders', Buffer.from(`order ${i}`), { persistent: true });
    await ch.waitForConfirms();
    await page.waitForFunction(() => {
      const rows = [...(globalThis as unknown as Win).document.querySelectorAll('#queues-table tbody tr')];
      const row = rows.find((tr) => tr.textContent?.includes('dash-orders') === true);
      return row?.querySelector('td[data-col="messages_ready"]')?.textContent?.trim() === '1,234';
    });

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
    // A steady trickle while the tabs are visited: rates need two samples (5 s apart) to show,
    // and the latency tab curves.
    const conn = await amqp.connect(m.broker.url);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('dash-work', { durable: true });
    await ch.consume('dash-work', (msg) => {
      if (msg !== null) ch.ack(msg);
    });
    let n = 0;
    const trickle = setInterval(() => {
      for (let i = 0; i < 40; i++) ch.sendToQueue('dash-work', Buffer.from(`w${n++}`), { persistent: true });
    }, 100);
    try {
      const rendered: Record<string, string> = { connections: 'amqplib', channels: 'confirm', exchanges: 'amq.topic', queues: 'dash-work', latency: 'publish → confirm', admin: 'administrator' };
      for (const [view, text] of Object.entries(rendered)) {
        await page.click(`#tabs a[data-view="${view}"]`);
        await page.waitForFunction((t) => (globalThis as unknown as Win).document.querySelector('#view')?.textContent?.includes(t) === true, text);
        await page.screenshot({ path: `${outputDir}dashboard-${view}.png`, fullPage: true });
      }
      // Half a minute of samples with traffic, so the overview's charts have something to show.
      await waitFor(
        async () => {
          const ms = obj(await call(m.mgmt, '/api/overview?msg_rates_age=600&msg_rates_incr=5'))['message_stats'] as Record<string, { rate: number; samples: unknown[] }>;
          return (ms['publish_details']?.samples.length ?? 0) >= 6 && (ms['deliver_get_details']?.rate ?? 0) > 0;
        },
        'six samples with deliveries',
        60_000,
      );
      await page.click('#tabs a[data-view="overview"]');
      // Until the publish rate shows (the charts have lines then), and freeze the page there.
      const publishShown = (): boolean => !/^0$/.test((globalThis as unknown as Win).document.querySelector('#stat-publish .value')?.firstChild?.textContent ?? '0');
      await waitFor(
        async () => {
          await page.selectOption('#refresh-interval', '2000');
          await page.waitForFunction(publishShown);
          await page.selectOption('#refresh-interval', '0');
          return page.evaluate(publishShown);
        },
        'an overview showing a publish rate',
        pageDeadlineMs * 2,
      );
      await page.evaluate(() => (globalThis as unknown as Win).scrollTo(0, 0));
      await page.screenshot({ path: `${outputDir}dashboard.png`, fullPage: true });
    } finally {
      clearInterval(trickle);
      await ch.waitForConfirms().catch(() => {});
      await conn.close().catch(() => {});
    }
    assert.deepEqual(consoleErrors, [], 'no console errors');
  });
});
