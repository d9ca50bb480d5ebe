#!/usr/bin/env node
// WebSocket interop scenarios: the real npm Bayeux clients (cometd with
// cometd-nodejs-client, whose adapt() supplies the `ws` package as
// window.WebSocket, and faye with faye-websocket) on bayeuxhub's websocket
// transport, next to long-polling clients on the same channels.
//
// Usage:  node ws.mjs <server-url> <scenario>
//   server-url  e.g. http://127.0.0.1:18080/cometd
//   scenario    exchange | reconnect
//
// Output: one JSON line on stdout, {"scenario":..,"ok":true|false,..}; exit
// code 0 on success, 1 on failure.
//
// The reconnect scenario needs a driver (test/interop_ws_test.go) between
// the clients and the server: the script prints the line "CONTROL drop" and
// waits for the line "dropped" on stdin, by which time the driver has cut
// every connection (the sockets close under the clients).
//
// Environment: INTEROP_TIMEOUT_MS (default 20000), INTEROP_DEBUG=1.

import { isDeepStrictEqual, inspect } from 'node:util';
import readline from 'node:readline';
import { adapt } from 'cometd-nodejs-client';
import faye from 'faye';

adapt(); // window, XMLHttpRequest and WebSocket (from `ws`) for cometd
const { CometD } = await import('cometd');

const DEBUG = process.env.INTEROP_DEBUG === '1';
const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 20000);
if (DEBUG) {
  faye.logger = { debug: console.error, info: console.error, warn: console.error, error: console.error };
}

// ---------------------------------------------------------------------------
// Reporting.

const started = Date.now();
const checks = [];
const pending = new Set();
const info = {};
let scenarioName = '?';
let finished = false;

function finish(ok, error) {
  if (finished) return;
  finished = true;
  const result = { scenario: scenarioName, ok, ms: Date.now() - started };
  if (error) result.error = error;
  if (!ok && pending.size > 0) result.waitingFor = [...pending];
  result.checks = checks;
  Object.assign(result, info);
  process.stdout.write(JSON.stringify(result) + '\n');
  if (!ok) process.stderr.write(`ws ${scenarioName}: FAIL: ${error}\n`);
  process.exit(ok ? 0 : 1);
}

class CheckError extends Error {}

function check(cond, what, detail) {
  if (!cond) throw new CheckError(detail === undefined ? what : `${what}: ${detail}`);
  checks.push(what);
}

function checkEqual(actual, expected, what) {
  check(isDeepStrictEqual(actual, expected), what,
    `got ${inspect(actual, { depth: 6 })}, want ${inspect(expected, { depth: 6 })}`);
}

async function waitStep(description, promise) {
  pending.add(description);
  try {
    return await promise;
  } finally {
    pending.delete(description);
  }
}

process.on('uncaughtException', (err) => finish(false, `uncaught exception: ${err && err.stack || err}`));
process.on('unhandledRejection', (err) => finish(false, `unhandled rejection: ${err && err.stack || err}`));

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Collector is a list with "wait until an item matches".
class Collector {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(item)) return true;
      w.resolve(item);
      return false;
    });
  }

  waitFor(pred) {
    const found = this.items.find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  filter(pred) {
    return this.items.filter(pred);
  }
}

// ---------------------------------------------------------------------------
// The two libraries behind one API: connect(), subscribe(channel),
// publish(channel, data), disconnect(), transport (the connection type in
// use), received (a Collector of {channel, data}), wireOut/wireIn (every
// message sent and received, seen by an extension).

class CometdPeer {
  constructor(name, websocket) {
    this.lib = 'cometd';
    this.name = name;
    this.websocket = websocket;
    this.client = new CometD(name);
    if (!websocket) this.client.unregisterTransport('websocket');
    this.received = new Collector();
    this.wireIn = new Collector();
    this.wireOut = new Collector();
    this.client.registerExtension('ws-wire', {
      incoming: (m) => { this.wireIn.push(structuredClone(m)); return m; },
      outgoing: (m) => { this.wireOut.push(structuredClone(m)); return m; },
    });
  }

  connect(url) {
    this.client.configure({ url, logLevel: DEBUG ? 'debug' : 'warn' });
    return waitStep(`${this.name}: handshake`, new Promise((resolve, reject) => {
      this.client.handshake((reply) => {
        if (reply.successful) resolve();
        else if (!this.websocket) reject(new CheckError(`${this.name}: handshake failed: ${JSON.stringify(reply)}`));
      });
    })).then(() => waitStep(`${this.name}: first /meta/connect reply`,
      this.wireIn.waitFor((m) => m.channel === '/meta/connect' && m.successful === true)));
  }

  get transport() {
    const t = this.client.getTransport();
    // cometd 9 has a `type` getter; older versions had getType().
    return t ? (t.type ?? t.getType?.()) : null;
  }

  subscribe(channel) {
    return waitStep(`${this.name}: subscribe ${channel}`, new Promise((resolve, reject) => {
      this.client.subscribe(channel,
        (m) => this.received.push({ channel: m.channel, data: structuredClone(m.data) }),
        (reply) => (reply.successful ? resolve() : reject(new CheckError(`${this.name}: subscribe refused: ${JSON.stringify(reply)}`))));
    }));
  }

  publish(channel, data) {
    return new Promise((resolve, reject) => {
      this.client.publish(channel, data, (reply) => (reply.successful ? resolve()
        : reject(new CheckError(`${this.name}: publish refused: ${JSON.stringify(reply)}`))));
    });
  }

  disconnect() {
    return new Promise((resolve) => this.client.disconnect(() => resolve()));
  }
}

class FayePeer {
  constructor(name, url, websocket) {
    this.lib = 'faye';
    this.name = name;
    this.websocket = websocket;
    this.client = new faye.Client(url, { timeout: 60, retry: 1 });
    if (!websocket) this.client.disable('websocket');
    this.client.disable('autodisconnect');
    this.received = new Collector();
    this.wireIn = new Collector();
    this.wireOut = new Collector();
    this.client.addExtension({
      incoming: (m, cb) => { this.wireIn.push(structuredClone(m)); cb(m); },
      outgoing: (m, cb) => { this.wireOut.push(structuredClone(m)); cb(m); },
    });
  }

  connect() {
    return waitStep(`${this.name}: handshake`, new Promise((resolve) => this.client.connect(() => resolve())));
  }

  get transport() {
    return this.client._dispatcher.connectionType || null;
  }

  subscribe(channel) {
    return waitStep(`${this.name}: subscribe ${channel}`, Promise.resolve(this.client.subscribe(channel,
      (data) => this.received.push({ channel, data: structuredClone(data) }))));
  }

  publish(channel, data) {
    return Promise.resolve(this.client.publish(channel, data));
  }

  disconnect() {
    return Promise.resolve(this.client.disconnect());
  }
}

function makePeers(url) {
  return [
    new CometdPeer('cometd-ws', true),
    new FayePeer('faye-ws', url, true),
    new CometdPeer('cometd-lp', false),
    new FayePeer('faye-lp', url, false),
  ];
}

// connectAll connects every peer and checks the transport each one uses:
// websocket peers must send their /meta/connect messages over websocket.
async function connectAll(url, peers) {
  await Promise.all(peers.map((p) => p.connect(url)));
  for (const p of peers) {
    const want = p.websocket ? 'websocket' : 'long-polling';
    await waitStep(`${p.name}: a /meta/connect over ${want}`,
      p.wireOut.waitFor((m) => m.channel === '/meta/connect' && m.connectionType === want));
    checkEqual(p.transport, want, `${p.name} (${p.lib}) uses ${want}`);
  }
  info.transports = Object.fromEntries(peers.map((p) => [p.name, p.transport]));
}

// exchange has every peer publish n messages on channel and checks that
// every other peer receives them all, in each publisher's order.
async function exchange(peers, channel, n, tag) {
  await Promise.all(peers.map(async (p) => {
    for (let i = 0; i < n; i++) await p.publish(channel, { from: p.name, tag, i });
  }));
  for (const s of peers) {
    for (const p of peers) {
      if (p === s) continue;
      const want = [...Array(n).keys()];
      const seqs = () => s.received.filter((m) => m.channel === channel && m.data.from === p.name && m.data.tag === tag).map((m) => m.data.i);
      await waitStep(`${s.name} receives ${n} from ${p.name} (${tag})`,
        s.received.waitFor(() => seqs().length >= n));
      checkEqual(seqs(), want, `${p.name} -> ${s.name}: ${n} messages in order (${tag})`);
    }
  }
}

// ---------------------------------------------------------------------------
// Scenarios.

// exchange: websocket and long-polling clients of both libraries on one
// channel, every pair in both directions.
async function exchangeScenario(url) {
  const peers = makePeers(url);
  await connectAll(url, peers);
  await Promise.all(peers.map((p) => p.subscribe('/ws/chat')));
  await exchange(peers, '/ws/chat', 20, 'exchange');
  await Promise.all(peers.map((p) => p.disconnect()));
}

// reconnect: the sockets are cut under the clients; the websocket clients
// reconnect (over websocket again) and keep their subscriptions, or
// re-handshake and resubscribe; messages flow again in every direction.
async function reconnectScenario(url) {
  const peers = makePeers(url);
  await connectAll(url, peers);
  await Promise.all(peers.map((p) => p.subscribe('/ws/re')));
  await exchange(peers, '/ws/re', 3, 'before');
  const handshakesBefore = peers.map((p) => p.wireOut.filter((m) => m.channel === '/meta/handshake').length);

  await waitStep('the driver to cut every connection', control('drop'));

  // Each peer publishes probes until every other peer has received one of
  // them: messages published while a socket was being re-established may
  // be lost in flight, as on long-polling without the ack extension.
  const got = (s, p) => s.received.filter((m) => m.channel === '/ws/re' && m.data.from === p.name && m.data.tag === 'probe').length > 0;
  const allGot = () => peers.every((s) => peers.every((p) => p === s || got(s, p)));
  let n = 0;
  await waitStep('probes after the cut reach every peer', (async () => {
    while (!allGot()) {
      for (const p of peers) p.publish('/ws/re', { from: p.name, tag: 'probe', i: n }).catch(() => {});
      n++;
      await delay(250);
    }
  })());
  check(true, `every peer receives every other peer's messages after the cut (${n} probe rounds)`);
  for (const p of peers.filter((q) => q.websocket)) {
    checkEqual(p.transport, 'websocket', `${p.name} is on websocket again after the cut`);
  }
  // Once reconnected, nothing is lost.
  await exchange(peers, '/ws/re', 5, 'after');
  info.handshakes = Object.fromEntries(peers.map((p, i) => [p.name,
    { before: handshakesBefore[i], after: p.wireOut.filter((m) => m.channel === '/meta/handshake').length }]));
  await Promise.all(peers.map((p) => p.disconnect()));
}

// control asks the driver for an action and waits for its answer.
const stdinLines = readline.createInterface({ input: process.stdin });
const answers = [];
const answerWaiters = [];
stdinLines.on('line', (line) => {
  const w = answerWaiters.shift();
  if (w) w(line.trim());
  else answers.push(line.trim());
});

function control(action) {
  process.stdout.write(`CONTROL ${action}\n`);
  return new Promise((resolve, reject) => {
    const onAnswer = (line) => (line === `${action}ped`
      ? resolve() : reject(new CheckError(`driver answered ${line} to ${action}`)));
    if (answers.length > 0) onAnswer(answers.shift());
    else answerWaiters.push(onAnswer);
  });
}

const scenarios = { exchange: exchangeScenario, reconnect: reconnectScenario };

async function main() {
  const [url, name] = process.argv.slice(2);
  scenarioName = name || '?';
  if (!url || !/^https?:\/\//.test(url) || !scenarios[name]) {
    finish(false, `usage: node ws.mjs <http://host:port/cometd> <${Object.keys(scenarios).join('|')}>`);
    return;
  }
  setTimeout(() => finish(false, `timeout after ${TIMEOUT_MS} ms`), TIMEOUT_MS);
  try {
    await scenarios[name](url);
  } catch (err) {
    finish(false, err instanceof CheckError ? err.message : (err && err.stack) || String(err));
    return;
  }
  finish(true);
}

main();
