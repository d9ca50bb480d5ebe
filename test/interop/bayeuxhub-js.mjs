#!/usr/bin/env node
// Runs the browser client htdocs/bayeuxhub.js in Node (with the `ws`
// package as WebSocket) against a bayeuxhub: handshake, subscribe, publish,
// receive; prints one JSON line {"ok":..,"transport":..} naming the
// transport the client ended up on. Driven by TestBayeuxHubJSTransport
// (test/interop_ws_test.go), which checks that it is websocket when the
// server offers it, and long-polling when it does not or when the upgrade
// fails.
//
// Usage: node bayeuxhub-js.mjs <http://host:port/cometd>

import { createRequire } from 'node:module';
import { WebSocket } from 'ws';

globalThis.WebSocket = WebSocket;
const require = createRequire(import.meta.url);
const BayeuxHub = require('../../htdocs/bayeuxhub.js');

const url = process.argv[2];
const deadline = setTimeout(() => done(false, 'timeout after 15 s'), 15000);
let client;

function done(ok, error) {
  clearTimeout(deadline);
  const out = { ok, transport: client ? client.transport : null };
  if (error) out.error = error;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(ok ? 0 : 1);
}

async function main() {
  client = new BayeuxHub.Client(url, { maxNetworkDelay: 5000 });
  const got = [];
  const sub = client.subscribe('/js/x', (m) => got.push(m.data));
  await client.connect();
  await sub;
  await new Promise((resolve) => {
    if (client.isConnected()) resolve();
    else client.on('state', (s) => s === 'connected' && resolve());
  });
  const ack = await client.publish('/js/x', { n: 1 });
  if (!ack.successful) return done(false, `publish: ${JSON.stringify(ack)}`);
  for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  if (got.length !== 1 || got[0].n !== 1) return done(false, `received ${JSON.stringify(got)}`);
  const transport = client.transport;
  await client.disconnect();
  client.transport = transport;
  done(true);
}

main().catch((err) => done(false, (err && err.stack) || String(err)));
