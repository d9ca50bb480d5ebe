#!/usr/bin/env node
// Replay across sessions (issue 13) with the real npm clients: faye as
// jsforce's Streaming API sets it up (Connection.streaming.createClient,
// with jsforce's StreamingExtension.Replay), and cometd with a replay
// extension of a few lines (below). Each subscribes to one channel with
// replay id -2 (everything retained), receives what the hub retained and
// then live messages; the driver (test/interop_replay_test.go) cuts it off
// long enough for its session to expire; it comes back, re-handshakes,
// subscribes again with the replay id of the last message it saw and must
// receive exactly what it missed.
//
// Usage:  REPLAY_CHANNEL=/topic/x node replay.mjs <server-url> <scenario>
//   server-url  e.g. http://127.0.0.1:18080/cometd
//   scenario    jsforce | jsforce-lp | cometd-lp | cometd-ws
//     jsforce     faye from jsforce's createClient, on whatever transport
//                 faye picks from the handshake (websocket when offered)
//     jsforce-lp  the same with faye's websocket transport disabled
//     cometd-lp   cometd on long-polling (websocket unregistered)
//     cometd-ws   cometd on websocket
//
// The script only reports; the driver publishes, cuts and judges. Every
// fact is one stdout line "EVENT {json}" as it happens:
//   {"kind":"handshake","successful":..,"clientId":..}   a handshake reply
//   {"kind":"subscribe","replay":{..},"lastSeen":N}     a /meta/subscribe
//       sent, its ext.replay and the last ext.replayId seen on the wire
//   {"kind":"subscribed","successful":..,"error":..}    its reply
//   {"kind":"wire","n":..,"replayId":..,"epoch":..}     a delivery on the
//       wire (before the library's own processing)
//   {"kind":"app","n":..,"replayId":..}                 a delivery the
//       application's subscription callback got (jsforce: the replay id
//       from data.event.replayId, and "shaped": data was
//       {event:{replayId},payload}; cometd: from ext.replayId)
// The line "finish" on stdin makes it disconnect and print its result line
// (peers.mjs: {"scenario":..,"ok":..,..}; exit 0 on success).
//
// Environment: REPLAY_CHANNEL (required), INTEROP_TIMEOUT_MS, INTEROP_DEBUG=1.

import { createRequire } from 'node:module';
import readline from 'node:readline';
import faye from 'faye';
import {
  CheckError, DEBUG, check, info, run, waitStep,
} from './peers.mjs';

const { CometD } = await import('cometd'); // after peers.mjs's adapt()
const require = createRequire(import.meta.url);
const jsforce = require('jsforce');
const { StreamingExtension } = require('jsforce/api/streaming');

const CHANNEL = process.env.REPLAY_CHANNEL;

function emit(kind, fact) {
  process.stdout.write(`EVENT ${JSON.stringify({ kind, ...fact })}\n`);
}

// Wire is what a client's recording extension saw: the last replay id
// delivered, and per session (handshake) the connection types its
// /meta/connect messages used.
class Wire {
  constructor() {
    this.lastSeen = null;
    this.sessions = [];
  }

  in(m) {
    if (m.channel === '/meta/handshake') {
      emit('handshake', { successful: m.successful, clientId: m.clientId, error: m.error });
      if (m.successful) this.sessions.push({ clientId: m.clientId, replay: m.ext?.replay, connectionTypes: [] });
    } else if (m.channel === '/meta/subscribe') {
      emit('subscribed', { successful: m.successful, error: m.error, subscription: m.subscription });
    } else if (m.channel === CHANNEL && m.data !== undefined) {
      const id = m.ext?.replayId;
      const payload = m.data?.payload ?? m.data;
      emit('wire', { n: payload?.n, replayId: id, epoch: m.ext?.replayEpoch, eventReplayId: m.data?.event?.replayId });
      if (typeof id === 'number') this.lastSeen = id;
    }
  }

  out(m) {
    if (m.channel === '/meta/subscribe') {
      emit('subscribe', { subscription: m.subscription, replay: m.ext?.replay, lastSeen: this.lastSeen });
    } else if (m.channel === '/meta/connect') {
      const s = this.sessions[this.sessions.length - 1];
      if (s && !s.connectionTypes.includes(m.connectionType)) s.connectionTypes.push(m.connectionType);
    }
  }
}

// cometdReplayExtension is the Salesforce replay extension for the cometd
// client, in a few lines: once the handshake reply says ext.replay: true,
// every /meta/subscribe to one of ids' channels carries ext.replay with the
// replay id of the last delivery seen on it (at first, ids' own: -2 for
// everything retained).
function cometdReplayExtension(ids) {
  let enabled = false;
  return {
    incoming(m) {
      if (m.channel === '/meta/handshake') enabled = m.ext?.replay === true;
      else if (Object.hasOwn(ids, m.channel) && typeof m.ext?.replayId === 'number') ids[m.channel] = m.ext.replayId;
      return m;
    },
    outgoing(m) {
      if (enabled && m.channel === '/meta/subscribe' && Object.hasOwn(ids, m.subscription)) {
        m.ext = { ...m.ext, replay: { [m.subscription]: ids[m.subscription] } };
      }
      return m;
    },
  };
}

// jsforceClient is faye as jsforce's Streaming API creates it, with
// jsforce's replay extension from -2, and a recording extension after it
// (faye runs extensions in the order added, both ways).
function jsforceClient(url, websocket) {
  const u = new URL(url);
  // createClient talks to <instanceUrl>/cometd/<version>; the hub serves
  // every path below /cometd.
  const conn = new jsforce.Connection({ instanceUrl: u.origin, accessToken: 'interop', version: '62.0' });
  const client = conn.streaming.createClient([new StreamingExtension.Replay(CHANNEL, -2)]);
  if (!websocket) client.disable('websocket');
  const wire = new Wire();
  client.addExtension({
    incoming: (m, cb) => { wire.in(structuredClone(m)); cb(m); },
    outgoing: (m, cb) => { wire.out(structuredClone(m)); cb(m); },
  });
  return {
    wire,
    lib: `jsforce ${jsforce.VERSION} (faye)`,
    transport: () => client._dispatcher.connectionType || null,
    endpoint: client._dispatcher.endpoint.href,
    start() {
      // faye handshakes on the first subscribe, and after a re-handshake
      // subscribes again by itself.
      const sub = client.subscribe(CHANNEL, (data) => {
        const shaped = typeof data?.event?.replayId === 'number' && data.payload !== undefined;
        emit('app', { n: data?.payload?.n, replayId: data?.event?.replayId, shaped });
      });
      return waitStep(`first subscribe to ${CHANNEL}`, Promise.resolve(sub));
    },
    disconnect: () => Promise.resolve(client.disconnect()),
  };
}

// cometdClient is the cometd client with the replay extension above; it
// subscribes in its handshake callback, which cometd calls on every
// successful handshake, the first and those after its session expired
// (cometd drops its subscriptions on a re-handshake).
function cometdClient(url, websocket) {
  const client = new CometD('replay');
  if (!websocket) client.unregisterTransport('websocket');
  const wire = new Wire();
  // cometd runs incoming extensions in the order registered and outgoing
  // ones in reverse: the recorder, first, is next to the wire both ways.
  client.registerExtension('wire', {
    incoming: (m) => { wire.in(structuredClone(m)); return m; },
    outgoing: (m) => { wire.out(structuredClone(m)); return m; },
  });
  client.registerExtension('replay', cometdReplayExtension({ [CHANNEL]: -2 }));
  // A quick retry while cut off keeps the test short.
  client.configure({ url, logLevel: DEBUG ? 'debug' : 'warn', backoffIncrement: 100, maxBackoff: 500 });
  return {
    wire,
    lib: 'cometd',
    transport: () => { const t = client.getTransport(); return t ? t.type : null; },
    endpoint: url,
    start() {
      let first;
      const subscribed = new Promise((resolve, reject) => { first = { resolve, reject }; });
      client.handshake((reply) => {
        if (!reply.successful) return; // cometd retries by itself
        client.subscribe(CHANNEL, (m) => emit('app', { n: m.data?.n, replayId: m.ext?.replayId }), (r) => (r.successful ? first.resolve()
          : first.reject(new CheckError(`subscribe refused: ${JSON.stringify(r)}`))));
      });
      return waitStep(`first subscribe to ${CHANNEL}`, subscribed);
    },
    disconnect: () => new Promise((resolve) => client.disconnect(() => resolve())),
  };
}

const stdin = readline.createInterface({ input: process.stdin });
const finishAsked = new Promise((resolve) => stdin.on('line', (l) => { if (l.trim() === 'finish') resolve(); }));

function scenario(make, websocket) {
  return async (url) => {
    check(CHANNEL, 'REPLAY_CHANNEL is set');
    const c = make(url, websocket);
    info.lib = c.lib;
    info.endpoint = c.endpoint;
    await c.start();
    await waitStep('the driver to say finish', finishAsked);
    info.transport = c.transport();
    info.sessions = c.wire.sessions;
    await waitStep('disconnect', c.disconnect());
  };
}

// jsforce's faye is the one installed at the top (npm dedupes it).
info.faye = faye.VERSION;
info.fayeShared = require.resolve('faye') === require.resolve('faye', { paths: [require.resolve('jsforce')] });

run('replay.mjs', {
  jsforce: scenario(jsforceClient, true),
  'jsforce-lp': scenario(jsforceClient, false),
  'cometd-lp': scenario(cometdClient, false),
  'cometd-ws': scenario(cometdClient, true),
});
