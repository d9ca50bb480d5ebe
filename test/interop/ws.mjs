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

import readline from 'node:readline';
import {
  check, checkEqual, CheckError, connectAll, delay, exchange, info, makePeers, run, waitStep,
} from './peers.mjs';

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

run('ws.mjs', scenarios);
