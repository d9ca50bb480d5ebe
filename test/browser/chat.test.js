// Browser test of the bayeuxhub chat page (htdocs/index.html) and live state
// page (htdocs/status.html), driven by test/browser_test.go (TestBrowserChat).
//
// Headless Debian Chromium (/usr/bin/chromium) through playwright-core, plus
// the npm CometD JavaScript client for interop.
//
// Environment:
//   BAYEUXHUB_URL        base URL of a running server, e.g. http://127.0.0.1:18090
//   BROWSER_TEST_CONTROL "stdio" when the Go test owns the server: this script
//                        prints "CTRL KILL" and waits for a "KILLED" line on stdin,
//                        then prints "CTRL START" and waits for "STARTED".
//                        Without it the restart step is skipped.
//   ARTIFACTS_DIR        where screenshots go (default: ./artifacts)
//   CHROMIUM             browser binary (default: /usr/bin/chromium)
//
// Exits 0 when every step passed, 1 otherwise; the last line says which.

import { chromium } from 'playwright-core';
import { adapt } from 'cometd-nodejs-client';
import { CometD } from 'cometd';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = (process.env.BAYEUXHUB_URL || 'http://127.0.0.1:18090').replace(/\/+$/, '');
const controlled = process.env.BROWSER_TEST_CONTROL === 'stdio';
const artifacts = process.env.ARTIFACTS_DIR || path.join(here, 'artifacts');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const started = Date.now();
function log(...args) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s]`, ...args);
}

class TestFailure extends Error {}
function check(cond, what) {
  if (!cond) {
    throw new TestFailure(what);
  }
}

// ---- control channel with the Go test -------------------------------------

const stdinLines = [];
const stdinWaiters = [];
if (controlled) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    line = line.trim();
    const w = stdinWaiters.shift();
    if (w) {
      w(line);
    } else {
      stdinLines.push(line);
    }
  });
}
function nextLine(timeoutMs) {
  if (stdinLines.length) {
    return Promise.resolve(stdinLines.shift());
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new TestFailure('no answer from the Go test on stdin')), timeoutMs);
    stdinWaiters.push((line) => { clearTimeout(timer); resolve(line); });
  });
}
async function control(command, expected) {
  console.log(`CTRL ${command}`);
  const answer = await nextLine(60000);
  check(answer === expected, `control ${command}: expected ${expected}, got ${JSON.stringify(answer)}`);
}

// ---- page helpers -----------------------------------------------------------

const pageErrors = [];

// openChat opens the chat page; query (e.g. '?transport=long-polling') is
// appended to its URL. The page's WebSocket URLs are kept in page.sockets.
async function openChat(browser, label, name, query = '') {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  page.on('pageerror', (err) => { pageErrors.push(`${label}: ${err.message}`); log(`${label} pageerror:`, err.message); });
  page.on('console', (msg) => {
    // Refused connections while the server is down are expected.
    if ((msg.type() === 'error' || msg.type() === 'warning') && !msg.text().includes('ERR_CONNECTION_REFUSED')) {
      log(`${label} console.${msg.type()}:`, msg.text());
    }
  });
  await page.goto(`${base}/${query}`, { waitUntil: 'load' });
  await waitState(page, label, ['connected'], 15000);
  await page.fill('#name', name);
  await page.press('#name', 'Enter'); // commits the name (change event)
  log(`${label}: connected as ${name}`);
  return page;
}

// checkTransport checks the transport the page's client uses, and that a
// WebSocket to /cometd was opened exactly when it should be; it prints
// "TRANSPORT <label> <name>" for the Go test.
async function checkTransport(page, label, want) {
  const got = await page.evaluate(() => window.chatClient.transport);
  check(got === want, `${label}: the chat client uses ${got}, want ${want}`);
  const cometdSockets = page.sockets.filter((u) => /\/cometd$/.test(u));
  if (want === 'websocket') {
    check(cometdSockets.length > 0, `${label}: no WebSocket to /cometd was opened`);
  } else {
    check(cometdSockets.length === 0, `${label}: a WebSocket was opened though the page long-polls: ${cometdSockets}`);
  }
  console.log(`TRANSPORT ${label} ${got}`);
}

async function statusText(page) {
  return (await page.textContent('#status')).trim();
}

async function waitState(page, label, states, timeoutMs) {
  try {
    await page.waitForFunction(
      (wanted) => wanted.includes(document.getElementById('status').textContent.trim()),
      states, { timeout: timeoutMs, polling: 100 });
  } catch (e) {
    throw new TestFailure(`${label}: #status is ${JSON.stringify(await statusText(page))}, wanted ${states.join(' or ')} within ${timeoutMs} ms`);
  }
}

// waitLogEntry waits until one child of #log contains all the given texts.
async function waitLogEntry(page, label, texts, timeoutMs = 10000) {
  try {
    await page.waitForFunction((wanted) => {
      for (const child of document.getElementById('log').children) {
        if (wanted.every((t) => child.textContent.includes(t))) {
          return true;
        }
      }
      return false;
    }, texts, { timeout: timeoutMs, polling: 100 });
  } catch (e) {
    const entries = await page.$$eval('#log > *', (els) => els.map((el) => el.textContent.replace(/\s+/g, ' ').trim()));
    throw new TestFailure(`${label}: no #log child with ${JSON.stringify(texts)} within ${timeoutMs} ms; #log has ${JSON.stringify(entries.slice(-12))}`);
  }
}

async function say(page, text, how = 'enter') {
  await page.fill('#message', text);
  if (how === 'click') {
    await page.click('#send');
  } else {
    await page.press('#message', 'Enter');
  }
  const left = await page.inputValue('#message');
  check(left === '', `#message not cleared after sending (${JSON.stringify(left)})`);
}

// clientApiCheck runs inside a page: a second BayeuxHub.Client exercises the
// parts of the API the chat page does not.
async function clientApiCheck(transport) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fail = (error) => ({ ok: false, error });
  const c = new BayeuxHub.Client('/cometd', { transports: [transport] });
  const states = [];
  c.on('state', (st) => states.push(st));
  const got = { one: [], many: [], exact: [] };
  let outgoing = 0, incoming = 0;
  c.addExtension({
    outgoing(m) { outgoing++; if (m.channel === '/meta/handshake') { m.ext = { 'org.example.test': true }; } },
    incoming() { incoming++; },
  });
  const early = [
    c.subscribe('/browsertest/*', (m) => got.one.push(m.channel)),
    c.subscribe('/browsertest/**', (m) => got.many.push(m.channel)),
  ];
  const hs = await c.connect();
  if (!hs || !hs.clientId) return fail('no clientId from handshake');
  // connect() resolves with the handshake: the subscriptions made before it
  // are acknowledged later, and must be before publishing.
  await Promise.all(early);
  await c.subscribe('/browsertest/x', (m) => got.exact.push(m.channel));
  if (c.transport !== transport) return fail(`client on ${c.transport}, want ${transport}`);
  // Count HTTP requests and WebSocket frames.
  const realFetch = window.fetch;
  const realSend = WebSocket.prototype.send;
  let requests = 0;
  window.fetch = (...args) => { requests++; return realFetch(...args); };
  WebSocket.prototype.send = function (...args) { requests++; return realSend.apply(this, args); };
  let acks;
  try {
    const ps = [];
    c.batch(() => {
      ps.push(c.publish('/browsertest/x', { n: 1 }));
      ps.push(c.publish('/browsertest/x/y', { n: 2 }));
      ps.push(c.publish('/browsertest/z', { n: 3 }));
    });
    if (requests !== 1) return fail(`batch of 3 publishes took ${requests} requests or frames`);
    acks = await Promise.all(ps);
  } finally {
    window.fetch = realFetch;
    WebSocket.prototype.send = realSend;
  }
  if (!acks.every((a) => a && a.successful)) return fail(`publish acks ${JSON.stringify(acks)}`);
  for (let i = 0; i < 50 && got.many.length < 3; i++) await sleep(100);
  const sorted = (a) => a.slice().sort().join(',');
  if (sorted(got.one) !== '/browsertest/x,/browsertest/z') return fail(`/browsertest/* got ${got.one}`);
  if (sorted(got.many) !== '/browsertest/x,/browsertest/x/y,/browsertest/z') return fail(`/browsertest/** got ${got.many}`);
  if (sorted(got.exact) !== '/browsertest/x') return fail(`/browsertest/x got ${got.exact}`);
  const un = await c.unsubscribe('/browsertest/**');
  if (!un.successful) return fail(`unsubscribe ${JSON.stringify(un)}`);
  await c.publish('/browsertest/x/y', { n: 4 });
  await sleep(300);
  if (got.many.length !== 3) return fail('message delivered after unsubscribe');
  if (!outgoing || !incoming) return fail('extensions not called');
  await c.disconnect();
  if (c.state !== 'disconnected') return fail(`state after disconnect: ${c.state}`);
  return { ok: true, detail: { transport, states, outgoing, incoming } };
}

// ---- CometD client ----------------------------------------------------------

function cometdCall(fn) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new TestFailure('CometD call timed out')), 10000);
    fn((reply) => {
      clearTimeout(timer);
      if (reply && reply.successful) {
        resolve(reply);
      } else {
        reject(new TestFailure(`CometD reply unsuccessful: ${JSON.stringify(reply)}`));
      }
    });
  });
}

async function startCometD() {
  adapt();
  const cometd = new CometD();
  // Long polling, like the page: bayeuxhub speaks Bayeux over HTTP.
  cometd.unregisterTransport('websocket');
  cometd.configure({ url: `${base}/cometd`, logLevel: 'warn' });
  const received = [];
  const handshake = await cometdCall((cb) => cometd.handshake(cb));
  log('CometD: handshake ok, clientId', handshake.clientId, 'transport', cometd.getTransport() && cometd.getTransport().type);
  await cometdCall((cb) => cometd.subscribe('/chat/demo', (m) => received.push(m.data), cb));
  log('CometD: subscribed to /chat/demo');
  return { cometd, received };
}

async function waitReceived(received, pred, what, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (received.some(pred)) {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new TestFailure(`CometD client did not receive ${what} within ${timeoutMs} ms; got ${JSON.stringify(received.slice(-10))}`);
}

// ---- the scenario -----------------------------------------------------------

async function main() {
  mkdirSync(artifacts, { recursive: true });
  log(`server ${base}, chromium ${executablePath}, control ${controlled ? 'stdio' : 'none'}`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  log('chromium', browser.version());
  let cometdClient = null;
  try {
    // Step 2: two pages chat, A over WebSocket (the default), B over
    // long-polling (?transport=long-polling).
    const a = await openChat(browser, 'A', 'alice');
    const b = await openChat(browser, 'B', 'bob', '?transport=long-polling');
    await checkTransport(a, 'A', 'websocket');
    await checkTransport(b, 'B', 'long-polling');
    await waitLogEntry(a, 'A', ['bob', 'joined']);

    const hello = 'Hello from alice <b>not bold</b> & "quotes"';
    await say(a, hello);
    await waitLogEntry(b, 'B', ['alice', hello]);
    await waitLogEntry(a, 'A', ['alice', hello]);
    check(await b.$('#log b') === null, 'B: chat text was rendered as HTML');
    const time = await b.$$eval('#log > *', (els) => els[els.length - 1].querySelector('time') !== null);
    check(time, 'B: chat entry has no time');
    log('step 2: A -> B chat ok');

    await say(b, 'Hi alice, bob here', 'click');
    await waitLogEntry(a, 'A', ['bob', 'Hi alice, bob here']);
    log('step 2: B -> A chat ok (send button)');

    // The bayeuxhub.js API in the browser: wildcards, batching, extensions,
    // acks matched by id, unsubscribe, disconnect.
    for (const [page, transport] of [[b, 'long-polling'], [a, 'websocket']]) {
      const api = await page.evaluate(clientApiCheck, transport);
      check(api.ok, `bayeuxhub.js API check in the browser over ${transport}: ${api.error}`);
      log('step 2: bayeuxhub.js API ok', JSON.stringify(api.detail));
    }

    // Step 3: server restart.
    if (controlled) {
      await control('KILL', 'KILLED');
      await waitState(a, 'A', ['reconnecting', 'connecting', 'disconnected'], 15000);
      await waitState(b, 'B', ['reconnecting', 'connecting', 'disconnected'], 15000);
      log(`step 3: server down, A is ${await statusText(a)}, B is ${await statusText(b)}`);
      // Stay down a little, so the clients go through a few backoff retries,
      // and type a message meanwhile: it waits in the client's queue.
      await say(a, 'typed while the server was down');
      await a.waitForTimeout(2500);
      check(await statusText(a) !== 'connected', 'A: connected while the server is down');
      await control('START', 'STARTED');
      await waitState(a, 'A', ['connected'], 30000);
      await waitState(b, 'B', ['connected'], 30000);
      log('step 3: both pages connected again');
      await waitLogEntry(a, 'A', ['alice', 'typed while the server was down']);
      await waitLogEntry(a, 'A', ['Reconnected']);
      await say(b, 'bob is back after the restart');
      await waitLogEntry(a, 'A', ['bob', 'bob is back after the restart']);
      await say(a, 'alice too');
      await waitLogEntry(b, 'B', ['alice', 'alice too']);
      await waitLogEntry(a, 'A', ['alice', hello]); // the log was kept
      await checkTransport(a, 'A', 'websocket'); // back on a socket
      await checkTransport(b, 'B', 'long-polling');
      log('step 3: chat after restart ok');
    } else {
      log('step 3: skipped (BROWSER_TEST_CONTROL is not stdio)');
    }

    // Step 4: interop with the CometD JavaScript client.
    cometdClient = await startCometD();
    await say(a, 'to cometd from alice');
    await waitReceived(cometdClient.received, (d) => d && d.user === 'alice' && d.chat === 'to cometd from alice', 'the message typed in page A');
    log('step 4: page -> CometD ok');
    await cometdCall((cb) => cometdClient.cometd.publish('/chat/demo', { user: 'cometd', chat: 'hi from cometd' }, cb));
    await waitLogEntry(a, 'A', ['cometd', 'hi from cometd']);
    await waitLogEntry(b, 'B', ['cometd', 'hi from cometd']);
    log('step 4: CometD -> pages ok');

    // Step 5: screenshots.
    await a.waitForTimeout(400); // let the entry animation finish
    await a.screenshot({ path: path.join(artifacts, 'chat.png') });
    log('step 5: wrote', path.join(artifacts, 'chat.png'));

    const statusCtx = await browser.newContext({ viewport: { width: 1000, height: 700 }, deviceScaleFactor: 1 });
    const s = await statusCtx.newPage();
    s.on('pageerror', (err) => { pageErrors.push(`status: ${err.message}`); log('status pageerror:', err.message); });
    await s.goto(`${base}/status.html`, { waitUntil: 'load' });
    await waitState(s, 'status', ['connected'], 15000);
    // Some traffic so that the rates are not zero, until the screenshot is taken.
    let tick = 0;
    const traffic = setInterval(() => {
      cometdClient.cometd.publish('/chat/demo', { user: 'cometd', chat: `tick ${tick++}` });
    }, 100 + (tick % 7) * 10);
    try {
      await s.waitForFunction(() => {
        const n = (id) => Number(document.getElementById(id).textContent.replace(/[^0-9.]/g, ''));
        return n('clients') > 0 && n('channels') > 0 && n('published') > 0 && n('delivered') > 0 &&
          n('handshakes') > 0 && document.getElementById('uptime').textContent.trim() !== '\u2013';
      }, null, { timeout: 15000, polling: 200 });
    } catch (e) {
      clearInterval(traffic);
      const shown = await s.$$eval('.card .value, .card .hint', (els) => els.map((el) => el.textContent.trim()));
      await s.screenshot({ path: path.join(artifacts, 'status.png') });
      throw new TestFailure(`status page: no non-zero numbers from /bayeuxhub/stats within 15 s; it shows ${JSON.stringify(shown)}`);
    }
    await s.waitForTimeout(4000);
    await s.screenshot({ path: path.join(artifacts, 'status.png') });
    clearInterval(traffic);
    log('step 5: wrote', path.join(artifacts, 'status.png'), 'showing',
      JSON.stringify(await s.$$eval('.card .value', (els) => els.map((el) => el.textContent.trim()))));

    // Step 6: a hub that requires tokens (BAYEUXHUB_SECURE_URL, started by
    // the Go test with a config file): the page opened as /#token=... joins
    // under the token's name and chats; without a token it shows the
    // hub's refusal.
    const secure = process.env.BAYEUXHUB_SECURE_URL;
    if (secure) {
      const ctx = await browser.newContext({ viewport: { width: 1000, height: 720 } });
      const refused = await ctx.newPage();
      refused.on('pageerror', (err) => pageErrors.push(`refused: ${err.message}`));
      await refused.goto(`${secure}/`, { waitUntil: 'load' });
      await waitLogEntry(refused, 'refused', ['The hub refused this page', '403::Authentication required'], 15000);
      const page = await (await browser.newContext({ viewport: { width: 1000, height: 720 } })).newPage();
      page.on('pageerror', (err) => pageErrors.push(`token: ${err.message}`));
      await page.goto(`${secure}/#token=${process.env.SECURE_TOKEN}`, { waitUntil: 'load' });
      await waitState(page, 'token', ['connected'], 15000);
      check(!page.url().includes('token='), `the token stayed in the address bar: ${page.url()}`);
      check(await page.inputValue('#name') === 'Alice', `name from the token: ${await page.inputValue('#name')}`);
      await say(page, 'hello from a logged-in page');
      await waitLogEntry(page, 'token', ['Alice', 'hello from a logged-in page']);
      await page.reload({ waitUntil: 'load' }); // the token is kept for the tab
      await waitState(page, 'token', ['connected'], 15000);
      log('step 6: token page connected and chatted; tokenless page refused');
    } else {
      log('step 6: skipped (no BAYEUXHUB_SECURE_URL)');
    }

    check(pageErrors.length === 0, `uncaught errors in pages: ${pageErrors.join('; ')}`);
  } finally {
    if (cometdClient) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 3000);
        cometdClient.cometd.disconnect(() => { clearTimeout(timer); resolve(); });
      });
    }
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  console.log('FAIL: browser test timed out after 240 s');
  process.exit(1);
}, 240000);

main().then(() => {
  clearTimeout(watchdog);
  console.log('PASS: browser chat test');
  process.exit(0);
}, (err) => {
  clearTimeout(watchdog);
  console.log(`FAIL: ${err instanceof TestFailure ? err.message : (err && err.stack) || err}`);
  process.exit(1);
});
