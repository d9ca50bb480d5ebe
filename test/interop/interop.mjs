#!/usr/bin/env node
// Interop scenarios driving the real npm Bayeux clients (cometd + faye)
// against a running bayeuxhub server.
//
// Usage:  node interop.mjs <server-url> <scenario>
//   server-url  e.g. http://127.0.0.1:18080/cometd
//   scenario    one of: basic, wildcards, unsubscribe, disconnect, ordering,
//               fallback
//
// Output: exactly one JSON line on stdout, {"scenario":..,"ok":true|false,..};
// the exit code is 0 on success and 1 on any failure (assertion, protocol
// error, uncaught exception, or the scenario's own timeout).
//
// Environment:
//   INTEROP_TIMEOUT_MS  overall deadline for one scenario (default 20000)
//   INTEROP_DEBUG=1     verbose client logging on stderr
//
// Every assertion is made twice where it matters: once on what the library
// hands to the application (subscription callbacks, ack callbacks) and once
// on the wire, i.e. on every message the server sent, as seen by an incoming
// extension before the library's own client-side channel matching. The wire
// view catches server bugs that the libraries would otherwise hide (for
// example an extra delivery that no local listener matches).

import { isDeepStrictEqual, inspect } from 'node:util';
import { adapt } from 'cometd-nodejs-client';
import faye from 'faye';

// cometd needs a browser-like `window` with XMLHttpRequest; adapt() installs
// one, so the cometd module is imported only afterwards.
adapt();
const { CometD } = await import('cometd');

const DEBUG = process.env.INTEROP_DEBUG === '1';
const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 20000);

if (DEBUG) {
  faye.logger = { debug: console.error, info: console.error, warn: console.error, error: console.error };
}

// ---------------------------------------------------------------------------
// Result reporting and the scenario deadline.

const started = Date.now();
const checks = [];          // human-readable list of passed checks
const pending = new Set();  // descriptions of what we are currently waiting for
const info = {};            // extra facts reported in the JSON line
let scenarioName = '?';
let finished = false;
const allWireLogs = [];    // every client's WireLog, to explain timeouts

function finish(ok, error) {
  if (finished) return;
  finished = true;
  const result = { scenario: scenarioName, ok, ms: Date.now() - started };
  if (error) result.error = error;
  if (!ok && pending.size > 0) result.waitingFor = [...pending];
  result.checks = checks;
  Object.assign(result, info);
  process.stdout.write(JSON.stringify(result) + '\n');
  if (!ok) {
    process.stderr.write(`interop ${scenarioName}: FAIL: ${error}\n`);
    if (pending.size > 0) process.stderr.write(`  still waiting for: ${[...pending].join('; ')}\n`);
  }
  // Both libraries keep timers and long polls alive; exit explicitly.
  process.exit(ok ? 0 : 1);
}

class CheckError extends Error {}

// check throws a CheckError (reported as the failure) unless cond holds.
function check(cond, what, detail) {
  if (!cond) {
    throw new CheckError(detail === undefined ? what : `${what}: ${detail}`);
  }
  checks.push(what);
}

function checkEqual(actual, expected, what) {
  check(isDeepStrictEqual(actual, expected), what,
    `got ${inspect(actual, { depth: 6 })}, want ${inspect(expected, { depth: 6 })}`);
}

// waitStep tracks a promise as "pending" so a timeout can say what was missing.
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

// ---------------------------------------------------------------------------
// A list of items with "wait until an item matches" support.

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

  // waitFor resolves with the first item (already seen or future) matching pred.
  waitFor(pred) {
    const found = this.items.find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  // waitCount resolves once n items match pred.
  waitCount(pred, n) {
    let seen = this.items.filter(pred).length;
    if (seen >= n) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({
        pred: (item) => pred(item) && ++seen >= n,
        resolve,
      });
    });
  }

  filter(pred) {
    return this.items.filter(pred);
  }
}

const isMeta = (m) => typeof m.channel === 'string' && m.channel.startsWith('/meta/');

// A server-to-client event delivery (as opposed to a reply/ack).
const isDelivery = (m) => !isMeta(m) && m.data !== undefined && m.successful === undefined;

// WireLog records every message exchanged, via library extensions.
class WireLog {
  constructor(label) {
    this.label = label;
    this.incoming = new Collector();
    this.outgoing = new Collector();
    this.problems = [];
    allWireLogs.push(this);
  }

  in(message) {
    const m = structuredClone(message);
    if (!isMeta(m) && m.successful !== undefined && m.data !== undefined) {
      // cometd treats any non-meta message with `data` as a delivery, so an ack
      // carrying data is misrouted by the real client.
      this.problems.push(`publish ack carries a data field: ${JSON.stringify(m)}`);
    }
    this.incoming.push(m);
  }

  out(message) {
    this.outgoing.push(structuredClone(message));
  }

  deliveries(channel) {
    return this.incoming.filter((m) => isDelivery(m) && (channel === undefined || m.channel === channel));
  }

  reply(id) {
    return this.incoming.waitFor((m) => m.id === id && m.successful !== undefined);
  }
}

// ---------------------------------------------------------------------------
// Uniform wrappers over the two client libraries.
//
// Common API:
//   connect()              handshake; resolves with the clientId
//   subscribe(channel)     resolves with a Sub after a successful ack
//   unsubscribe(sub)       resolves with the server's /meta/unsubscribe reply
//   publish(channel, data) resolves with the publish ack (rejects if unsuccessful)
//   disconnect()           resolves with the /meta/disconnect reply
// Sub.received is a Collector of {channel, data} handed to the application.

class Sub {
  constructor(peer, channel) {
    this.peer = peer;
    this.channel = channel;
    this.received = new Collector();
    this.handle = null;
  }
}

class CometdPeer {
  // With keepWebsocket, cometd keeps its default transport list (websocket
  // first) and must fall back to long-polling by itself.
  constructor(name, { keepWebsocket = false } = {}) {
    this.lib = 'cometd';
    this.name = name;
    this.wire = new WireLog(name);
    this.client = new CometD(name);
    this.keepWebsocket = keepWebsocket;
    this.failedHandshakes = [];
    // The server offers no websocket; by default use the Bayeux long-polling
    // transport directly instead of relying on the fallback.
    if (!keepWebsocket) this.client.unregisterTransport('websocket');
    this.client.registerExtension('interop-wire', {
      incoming: (m) => { this.wire.in(m); return m; },
      outgoing: (m) => { this.wire.out(m); return m; },
    });
  }

  connect(url) {
    this.client.configure({ url, logLevel: DEBUG ? 'debug' : 'warn' });
    return waitStep(`${this.name}: handshake`, new Promise((resolve, reject) => {
      // The callback runs for every handshake attempt (cometd retries, and
      // falls back from websocket to long-polling on failure).
      this.client.handshake((reply) => {
        if (reply.successful) resolve(reply.clientId);
        else if (this.keepWebsocket) this.failedHandshakes.push(reply);
        else reject(new CheckError(`${this.name}: handshake failed: ${JSON.stringify(reply)}`));
      });
    })).then(async (clientId) => {
      this.clientId = clientId;
      // cometd holds application messages until the first /meta/connect reply.
      await waitStep(`${this.name}: first /meta/connect reply`,
        this.wire.incoming.waitFor((m) => m.channel === '/meta/connect' && m.successful === true));
      return clientId;
    });
  }

  get transport() {
    const t = this.client.getTransport();
    return t ? t.type : null;
  }

  subscribe(channel) {
    const sub = new Sub(this, channel);
    return waitStep(`${this.name}: subscribe ack for ${channel}`, new Promise((resolve, reject) => {
      sub.handle = this.client.subscribe(channel,
        (m) => sub.received.push({ channel: m.channel, data: structuredClone(m.data) }),
        (reply) => {
          if (reply.successful) resolve(sub);
          else reject(new CheckError(`${this.name}: subscribe ${channel} refused: ${JSON.stringify(reply)}`));
        });
    }));
  }

  unsubscribe(sub) {
    return waitStep(`${this.name}: unsubscribe ack for ${sub.channel}`, new Promise((resolve) => {
      this.client.unsubscribe(sub.handle, (reply) => resolve(reply));
    }));
  }

  // publishNoWait sends immediately and returns the ack promise.
  publishNoWait(channel, data) {
    return new Promise((resolve, reject) => {
      this.client.publish(channel, data, (reply) => {
        if (reply.successful) resolve(reply);
        else reject(new CheckError(`${this.name}: publish to ${channel} refused: ${JSON.stringify(reply)}`));
      });
    });
  }

  publish(channel, data) {
    return waitStep(`${this.name}: publish ack for ${channel}`, this.publishNoWait(channel, data));
  }

  disconnect() {
    return waitStep(`${this.name}: disconnect reply`, new Promise((resolve) => {
      this.client.disconnect((reply) => resolve(reply));
    }));
  }
}

class FayePeer {
  constructor(name, url) {
    this.lib = 'faye';
    this.name = name;
    this.wire = new WireLog(name);
    this.client = new faye.Client(url, { timeout: 60, retry: 1 });
    // No websocket on the server: force Bayeux long-polling over HTTP.
    this.client.disable('websocket');
    this.client.disable('autodisconnect');
    this.client.addExtension({
      incoming: (m, cb) => { this.wire.in(m); cb(m); },
      outgoing: (m, cb) => { this.wire.out(m); cb(m); },
    });
  }

  connect() {
    return waitStep(`${this.name}: handshake`, new Promise((resolve) => {
      this.client.connect(() => resolve());
    })).then(async () => {
      const hs = await this.wire.incoming.waitFor((m) => m.channel === '/meta/handshake' && m.successful === true);
      this.clientId = hs.clientId;
      return hs.clientId;
    });
  }

  get transport() {
    return this.client._dispatcher.connectionType || null;
  }

  subscribe(channel) {
    const sub = new Sub(this, channel);
    sub.handle = this.client.subscribe(channel);
    sub.handle.withChannel((ch, data) => sub.received.push({ channel: ch, data: structuredClone(data) }));
    return waitStep(`${this.name}: subscribe ack for ${channel}`, sub.handle.then(
      () => sub,
      (err) => { throw new CheckError(`${this.name}: subscribe ${channel} refused: ${JSON.stringify(err)}`); },
    ));
  }

  // faye's unsubscribe() has no completion callback: find the outgoing
  // /meta/unsubscribe on the wire and wait for the reply with the same id.
  async unsubscribe(sub) {
    const before = this.wire.outgoing.items.length;
    sub.handle.cancel();
    const out = await waitStep(`${this.name}: outgoing /meta/unsubscribe for ${sub.channel}`,
      this.wire.outgoing.waitFor((m) => m.channel === '/meta/unsubscribe' && m.subscription === sub.channel
        && this.wire.outgoing.items.indexOf(m) >= before));
    return waitStep(`${this.name}: unsubscribe reply id=${out.id}`, this.wire.reply(out.id));
  }

  publishNoWait(channel, data) {
    return this.client.publish(channel, data).then(
      () => ({ successful: true }),
      (err) => { throw new CheckError(`${this.name}: publish to ${channel} refused: ${JSON.stringify(err)}`); },
    );
  }

  publish(channel, data) {
    return waitStep(`${this.name}: publish ack for ${channel}`, this.publishNoWait(channel, data));
  }

  async disconnect() {
    const before = this.wire.outgoing.items.length;
    const done = this.client.disconnect();
    const out = await this.wire.outgoing.waitFor((m) => m.channel === '/meta/disconnect'
      && this.wire.outgoing.items.indexOf(m) >= before);
    const reply = await waitStep(`${this.name}: disconnect reply id=${out.id}`, this.wire.reply(out.id));
    if (reply.successful) {
      await waitStep(`${this.name}: disconnect promise`, done);
    }
    return reply;
  }
}

function peer(lib, name, url) {
  return lib === 'cometd' ? new CometdPeer(name) : new FayePeer(name, url);
}

async function connectAll(url, peers) {
  await Promise.all(peers.map((p) => p.connect(url)));
  for (const p of peers) {
    check(typeof p.clientId === 'string' && p.clientId.length > 0, `${p.name}: handshake gives a clientId`);
    if (p.keepWebsocket) {
      // Whatever cometd ends up on must be a type the server advertised.
      const hs = p.wire.incoming.filter((m) => m.channel === '/meta/handshake' && m.successful === true).pop();
      const offered = hs.supportedConnectionTypes || [];
      check(offered.includes(p.transport), `${p.name}: negotiated transport is one the server offers`,
        `${p.transport} not in ${JSON.stringify(offered)}`);
    } else {
      checkEqual(p.transport, 'long-polling', `${p.name}: negotiated transport`);
    }
  }
  info.clients = Object.fromEntries(peers.map((p) => [p.name, { lib: p.lib, transport: p.transport }]));
}

// Fails if any peer saw a malformed message (see WireLog.in).
function checkWireProblems(peers) {
  for (const p of peers) {
    check(p.wire.problems.length === 0, `${p.name}: no malformed messages on the wire`, p.wire.problems.join('; '));
  }
}

async function disconnectAll(peers) {
  for (const p of peers) {
    const reply = await p.disconnect();
    check(reply && reply.successful === true, `${p.name}: disconnect successful`, JSON.stringify(reply));
  }
}

const seqsOf = (msgs) => msgs.map((m) => m.data && m.data.seq);

// A payload exercising JSON types, escapes and non-ASCII text.
function richPayload(from) {
  return {
    from,
    text: 'h\u00e9llo w\u00f6rld \u2713 "quoted" back\\slash\nnewline\ttab \ud83d\ude00',
    html: '</script><b>&amp;</b>',
    int: 42,
    negative: -7,
    float: 3.25,
    big: 9007199254740991,
    yes: true,
    no: false,
    nothing: null,
    list: [1, 'two', { three: 3 }, [], [null]],
    nested: { a: { b: { c: 'deep' } } },
    empty: {},
    emptyString: '',
  };
}

// ---------------------------------------------------------------------------
// Scenarios.

// 1. Cross-library publish/subscribe on /chat/demo with identical data.
async function basic(url) {
  const c = peer('cometd', 'cometd', url);
  const f = peer('faye', 'faye', url);
  await connectAll(url, [c, f]);

  const cs = await c.subscribe('/chat/demo');
  const fs = await f.subscribe('/chat/demo');

  const fromC = richPayload('cometd');
  const ackC = await c.publish('/chat/demo', fromC);
  checkEqual(ackC.successful, true, 'cometd publish ack successful');
  checkEqual(ackC.channel, '/chat/demo', 'cometd publish ack channel');
  const gotF = await waitStep('faye receives the cometd message',
    fs.received.waitFor((m) => m.data && m.data.from === 'cometd'));
  checkEqual(gotF, { channel: '/chat/demo', data: fromC }, 'faye receives identical data from cometd');

  const fromF = richPayload('faye');
  await f.publish('/chat/demo', fromF);
  check(true, 'faye publish ack successful');
  const gotC = await waitStep('cometd receives the faye message',
    cs.received.waitFor((m) => m.data && m.data.from === 'faye'));
  checkEqual(gotC, { channel: '/chat/demo', data: fromF }, 'cometd receives identical data from faye');

  // The ack the server sent to faye, as seen on the wire.
  const fayeOut = f.wire.outgoing.items.find((m) => m.channel === '/chat/demo');
  const fayeAck = await f.wire.reply(fayeOut.id);
  checkEqual({ channel: fayeAck.channel, successful: fayeAck.successful, id: fayeAck.id },
    { channel: '/chat/demo', successful: true, id: fayeOut.id }, 'faye publish ack on the wire');

  // Publishers subscribed to the channel get their own message too; nobody
  // gets anything twice.
  await waitStep('cometd receives its own message', cs.received.waitFor((m) => m.data.from === 'cometd'));
  await waitStep('faye receives its own message', fs.received.waitFor((m) => m.data.from === 'faye'));
  for (const p of [c, f]) {
    const froms = p.wire.deliveries('/chat/demo').map((m) => m.data.from).sort();
    checkEqual(froms, ['cometd', 'faye'], `${p.name}: each message delivered exactly once on the wire`);
  }
  checkWireProblems([c, f]);
  await disconnectAll([c, f]);
}

// 2. Wildcard subscriptions: /chat/* (one segment), /chat/** (any depth),
//    and overlapping /chat/** + /chat/a (no duplicate delivery).
async function wildcards(url) {
  const subs = {};
  const peers = [];
  for (const lib of ['cometd', 'faye']) {
    for (const role of ['star', 'globstar', 'both']) {
      const p = peer(lib, `${lib}-${role}`, url);
      subs[p.name] = { peer: p, role };
      peers.push(p);
    }
  }
  const pubC = peer('cometd', 'cometd-publisher', url);
  const pubF = peer('faye', 'faye-publisher', url);
  await connectAll(url, [...peers, pubC, pubF]);

  for (const s of Object.values(subs)) {
    if (s.role === 'star') s.star = await s.peer.subscribe('/chat/*');
    if (s.role === 'globstar') s.glob = await s.peer.subscribe('/chat/**');
    if (s.role === 'both') {
      s.glob = await s.peer.subscribe('/chat/**');
      s.exact = await s.peer.subscribe('/chat/a');
    }
  }

  // Each publisher: /chat/a, /chat/a/b, then an end marker, one after the other.
  await pubC.publish('/chat/a', { seq: 1 });
  await pubC.publish('/chat/a/b', { seq: 2 });
  await pubC.publish('/chat/end', { marker: 'cometd' });
  await pubF.publish('/chat/a', { seq: 3 });
  await pubF.publish('/chat/a/b', { seq: 4 });
  await pubF.publish('/chat/end', { marker: 'faye' });
  check(true, 'all wildcard publishes acked successfully');

  for (const s of Object.values(subs)) {
    await waitStep(`${s.peer.name}: both end markers`,
      s.peer.wire.incoming.waitCount((m) => isDelivery(m) && m.channel === '/chat/end', 2));
  }

  const sorted = (xs) => [...xs].sort((a, b) => a - b);
  for (const s of Object.values(subs)) {
    const p = s.peer;
    const onA = seqsOf(p.wire.deliveries('/chat/a'));
    const onAB = seqsOf(p.wire.deliveries('/chat/a/b'));
    const others = p.wire.deliveries().filter((m) => !['/chat/a', '/chat/a/b', '/chat/end'].includes(m.channel));
    checkEqual(others, [], `${p.name}: no deliveries on unexpected channels`);
    if (s.role === 'star') {
      checkEqual(sorted(onA), [1, 3], `${p.name} (/chat/*): /chat/a delivered once per publish`);
      checkEqual(onAB, [], `${p.name} (/chat/*): /chat/a/b not delivered`);
      checkEqual(sorted(seqsOf(s.star.received.filter((m) => m.channel === '/chat/a'))), [1, 3],
        `${p.name} (/chat/*): listener got /chat/a`);
    } else {
      checkEqual(sorted(onA), [1, 3], `${p.name} (${s.role}): /chat/a delivered exactly once per publish`);
      checkEqual(sorted(onAB), [2, 4], `${p.name} (${s.role}): /chat/a/b delivered exactly once per publish`);
      checkEqual(sorted(seqsOf(s.glob.received.filter((m) => m.channel !== '/chat/end'))), [1, 2, 3, 4],
        `${p.name} (${s.role}): /chat/** listener got each message once`);
      if (s.exact) {
        checkEqual(sorted(seqsOf(s.exact.received.items)), [1, 3], `${p.name} (both): /chat/a listener got each message once`);
      }
    }
  }
  checkWireProblems([...peers, pubC, pubF]);
  await disconnectAll([...peers, pubC, pubF]);
}

// 3. After unsubscribing, nothing more arrives on that channel; a marker on
//    another (still subscribed) channel tells us when to stop waiting.
async function unsubscribe(url) {
  for (const [subLib, pubLib] of [['cometd', 'faye'], ['faye', 'cometd']]) {
    const s = peer(subLib, `${subLib}-subscriber`, url);
    const p = peer(pubLib, `${pubLib}-publisher`, url);
    await connectAll(url, [s, p]);
    const channel = `/chat/unsub/${subLib}`;
    const markerChannel = `/chat/marker/${subLib}`;
    const sub = await s.subscribe(channel);
    await s.subscribe(markerChannel);

    await p.publish(channel, { seq: 1 });
    await waitStep(`${s.name}: first message before unsubscribe`, sub.received.waitFor((m) => m.data.seq === 1));
    check(true, `${s.name}: receives while subscribed`);

    const reply = await s.unsubscribe(sub);
    checkEqual(reply.successful, true, `${s.name}: unsubscribe successful`);
    checkEqual(reply.subscription, channel, `${s.name}: unsubscribe reply names the channel`);

    await p.publish(channel, { seq: 2 });
    await p.publish(markerChannel, { marker: true });
    await waitStep(`${s.name}: marker after unsubscribe`,
      s.wire.incoming.waitFor((m) => isDelivery(m) && m.channel === markerChannel));
    checkEqual(seqsOf(s.wire.deliveries(channel)), [1], `${s.name}: nothing delivered after unsubscribe (wire)`);
    checkEqual(seqsOf(sub.received.items), [1], `${s.name}: listener got nothing after unsubscribe`);
    checkWireProblems([s, p]);
    await disconnectAll([s, p]);
  }
}

// 4. Disconnect succeeds for both libraries; afterwards the server refuses a
//    publish carrying the old clientId with error 402.
async function disconnect(url) {
  const c = peer('cometd', 'cometd', url);
  const f = peer('faye', 'faye', url);
  await connectAll(url, [c, f]);
  await c.subscribe('/chat/demo');
  await f.subscribe('/chat/demo');
  await disconnectAll([c, f]);
  checkWireProblems([c, f]);

  info.rawReplies = {};
  for (const p of [c, f]) {
    const msg = { channel: '/chat/demo', clientId: p.clientId, data: { after: 'disconnect' }, id: `raw-${p.name}` };
    const res = await waitStep(`raw publish for disconnected ${p.name}`, fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json;charset=UTF-8' },
      body: JSON.stringify([msg]),
      signal: AbortSignal.timeout(5000),
    }));
    const body = await res.text();
    info.rawReplies[p.name] = { status: res.status, body };
    // Clients only read Bayeux replies from 200 responses (cometd treats any
    // other status as a transport failure), so the refusal must be a 200.
    checkEqual(res.status, 200, `${p.name}: raw publish after disconnect answers HTTP 200`);
    let replies;
    try {
      replies = [].concat(JSON.parse(body));
    } catch (e) {
      check(false, `${p.name}: raw publish reply is JSON`, body);
    }
    const reply = replies.find((m) => m.id === msg.id) || replies.find((m) => m.channel === msg.channel);
    check(reply !== undefined, `${p.name}: raw publish gets a reply for its message`, body);
    checkEqual(reply.successful, false, `${p.name}: publish with old clientId refused`);
    check(typeof reply.error === 'string' && /^402:/.test(reply.error),
      `${p.name}: refusal carries error 402`, `error=${JSON.stringify(reply.error)}`);
  }
}

// 5. 200 messages published in a row by one client arrive in order at a
//    client of the other library.
async function ordering(url) {
  const N = 200;
  for (const [pubLib, subLib] of [['cometd', 'faye'], ['faye', 'cometd']]) {
    const p = peer(pubLib, `${pubLib}-publisher`, url);
    const s = peer(subLib, `${subLib}-subscriber`, url);
    await connectAll(url, [p, s]);
    const channel = `/chat/order/${pubLib}-to-${subLib}`;
    const sub = await s.subscribe(channel);

    const t0 = Date.now();
    if (pubLib === 'cometd') {
      // Fire all 200 at once: cometd queues them and sends them over a single
      // connection, in order.
      const acks = [];
      for (let i = 0; i < N; i++) acks.push(p.publishNoWait(channel, { seq: i }));
      await waitStep(`${p.name}: ${N} publish acks`, Promise.all(acks));
    } else {
      // faye's Node transport splits a large outbox into several concurrent
      // HTTP requests, so a burst has no defined order even before it reaches
      // the server; publish back to back, each after the previous ack.
      for (let i = 0; i < N; i++) await p.publish(channel, { seq: i });
    }
    check(true, `${p.name}: ${N} publishes acked successfully`);

    await waitStep(`${s.name}: ${N} deliveries on ${channel}`,
      s.wire.incoming.waitCount((m) => isDelivery(m) && m.channel === channel, N));
    const want = Array.from({ length: N }, (_, i) => i);
    checkEqual(seqsOf(s.wire.deliveries(channel)), want, `${pubLib} -> ${subLib}: ${N} messages in order on the wire`);
    checkEqual(seqsOf(sub.received.items), want, `${pubLib} -> ${subLib}: ${N} messages in order at the listener`);
    info[`${pubLib}->${subLib} ms`] = Date.now() - t0;
    checkWireProblems([p, s]);
    await disconnectAll([p, s]);
  }
}

// 6. cometd with its default transports (websocket first, as in a browser
//    app) must fall back to long-polling against a server without websocket,
//    and then work: round trip with a faye client.
async function fallback(url) {
  const c = new CometdPeer('cometd-default-transports', { keepWebsocket: true });
  const f = peer('faye', 'faye', url);
  await connectAll(url, [c, f]);
  info.failedHandshakes = c.failedHandshakes.map((r) => r.failure && r.failure.reason || r.error || 'unknown');
  const cs = await c.subscribe('/chat/fallback');
  const fs = await f.subscribe('/chat/fallback');
  await c.publish('/chat/fallback', { from: 'cometd' });
  await waitStep('faye receives from cometd', fs.received.waitFor((m) => m.data.from === 'cometd'));
  await f.publish('/chat/fallback', { from: 'faye' });
  await waitStep('cometd receives from faye', cs.received.waitFor((m) => m.data.from === 'faye'));
  check(true, `round trip with default cometd transports (on ${c.transport})`);
  checkWireProblems([c, f]);
  await disconnectAll([c, f]);
}

const scenarios = { basic, wildcards, unsubscribe, disconnect, ordering, fallback };

// ---------------------------------------------------------------------------

async function main() {
  const [url, name] = process.argv.slice(2);
  scenarioName = name || '?';
  if (!url || !/^https?:\/\//.test(url) || !scenarios[name]) {
    finish(false, `usage: node interop.mjs <http://host:port/cometd> <${Object.keys(scenarios).join('|')}>`);
    return;
  }
  setTimeout(() => {
    // A malformed message (e.g. an ack the library cannot match) is the
    // usual reason for a hang; name it.
    const problems = allWireLogs.flatMap((w) => w.problems.map((p) => `${w.label}: ${p}`));
    finish(false, `timeout after ${TIMEOUT_MS} ms`
      + (problems.length ? `; malformed messages seen: ${problems.slice(0, 3).join('; ')}` : ''));
  }, TIMEOUT_MS);
  try {
    await scenarios[name](url);
  } catch (err) {
    finish(false, err instanceof CheckError ? err.message : (err && err.stack) || String(err));
    return;
  }
  finish(true);
}

main();
