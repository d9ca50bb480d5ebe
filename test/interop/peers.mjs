// Shared parts of the interop scripts (ws.mjs, auth.mjs): the result line
// and checks, and the npm cometd and faye clients behind one small API.
//
// Environment: INTEROP_TIMEOUT_MS (default 20000), INTEROP_DEBUG=1.

import { isDeepStrictEqual, inspect } from 'node:util';
import { adapt } from 'cometd-nodejs-client';
import faye from 'faye';

adapt(); // window, XMLHttpRequest and WebSocket (from `ws`) for cometd
const { CometD } = await import('cometd');

export const DEBUG = process.env.INTEROP_DEBUG === '1';
export const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 20000);
if (DEBUG) {
  faye.logger = { debug: console.error, info: console.error, warn: console.error, error: console.error };
}

// ---------------------------------------------------------------------------
// Reporting.

const started = Date.now();
const checks = [];
const pending = new Set();
export const info = {};
let scenarioName = '?';

// setScenario names the scenario in the result line.
export function setScenario(name) { scenarioName = name; }
let finished = false;

export function finish(ok, error) {
  if (finished) return;
  finished = true;
  const result = { scenario: scenarioName, ok, ms: Date.now() - started };
  if (error) result.error = error;
  if (!ok && pending.size > 0) result.waitingFor = [...pending];
  result.checks = checks;
  Object.assign(result, info);
  process.stdout.write(JSON.stringify(result) + '\n');
  if (!ok) process.stderr.write(`${process.argv[1]} ${scenarioName}: FAIL: ${error}\n`);
  process.exit(ok ? 0 : 1);
}

export class CheckError extends Error {}

export function check(cond, what, detail) {
  if (!cond) throw new CheckError(detail === undefined ? what : `${what}: ${detail}`);
  checks.push(what);
}

export function checkEqual(actual, expected, what) {
  check(isDeepStrictEqual(actual, expected), what,
    `got ${inspect(actual, { depth: 6 })}, want ${inspect(expected, { depth: 6 })}`);
}

export async function waitStep(description, promise) {
  pending.add(description);
  try {
    return await promise;
  } finally {
    pending.delete(description);
  }
}

process.on('uncaughtException', (err) => finish(false, `uncaught exception: ${err && err.stack || err}`));
process.on('unhandledRejection', (err) => finish(false, `unhandled rejection: ${err && err.stack || err}`));

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Collector is a list with "wait until an item matches".
export class Collector {
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

export class CometdPeer {
  // opts.token, when set, is sent in the handshake as ext.auth.token.
  constructor(name, websocket, opts = {}) {
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
    if (opts.token) {
      this.client.registerExtension('auth', {
        outgoing: (m) => {
          if (m.channel === '/meta/handshake') m.ext = { ...m.ext, auth: { token: opts.token } };
          return m;
        },
      });
    }
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

export class FayePeer {
  // opts.token, when set, is sent in the handshake as ext.auth.token.
  constructor(name, url, websocket, opts = {}) {
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
    if (opts.token) {
      this.client.addExtension({
        outgoing: (m, cb) => {
          if (m.channel === '/meta/handshake') m.ext = { ...m.ext, auth: { token: opts.token } };
          cb(m);
        },
      });
    }
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

// makePeers returns one client of each library on each transport; opts
// go to every one.
export function makePeers(url, opts = {}) {
  return [
    new CometdPeer('cometd-ws', true, opts),
    new FayePeer('faye-ws', url, true, opts),
    new CometdPeer('cometd-lp', false, opts),
    new FayePeer('faye-lp', url, false, opts),
  ];
}

// connectAll connects every peer and checks the transport each one uses:
// websocket peers must send their /meta/connect messages over websocket.
export async function connectAll(url, peers) {
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
export async function exchange(peers, channel, n, tag) {
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

// run runs the scenario named on the command line, prints its result line
// and exits.
export async function run(script, scenarios) {
  const [url, name] = process.argv.slice(2);
  setScenario(name || '?');
  if (!url || !/^https?:\/\//.test(url) || !scenarios[name]) {
    finish(false, `usage: node ${script} <http://host:port/cometd> <${Object.keys(scenarios).join('|')}>`);
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
