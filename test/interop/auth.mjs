#!/usr/bin/env node
// Authentication interop scenario: the real npm cometd and faye clients,
// over websocket and long-polling, pass a JWT in the handshake through an
// extension (ext.auth.token) to a hub that requires one.
//
// Usage:  INTEROP_TOKEN=<alice's token> INTEROP_API_KEY=<key> node auth.mjs <server-url> token
//
// The scenario checks that with the token each client subscribes to
// alice's personal channel and receives what the backend API publishes
// there; that another user's channel and the server-only statistics
// channel are refused with the hub's 403 errors; and that clients without
// a token are refused at handshake with reconnect "none" and stop trying.
// Output: one JSON line on stdout (see peers.mjs).

import {
  CometdPeer, FayePeer, checkEqual, check, connectAll, delay, info, makePeers, run, waitStep,
} from './peers.mjs';

const TOKEN = process.env.INTEROP_TOKEN;
const API_KEY = process.env.INTEROP_API_KEY;

// reply waits for the server's reply on channel (for a subscribe, naming
// subscription) as the peer's wire extension saw it.
function reply(p, channel, subscription) {
  return waitStep(`${p.name}: reply on ${subscription || channel}`, p.wireIn.waitFor((m) => m.channel === channel
    && (subscription === undefined || m.subscription === subscription) && m.successful !== undefined));
}

async function subscribeRefused(p, channel, want) {
  if (p.lib === 'cometd') {
    p.client.subscribe(channel, () => {}, () => {});
  } else {
    p.client.subscribe(channel, () => {}).errback(() => {});
  }
  const r = await reply(p, '/meta/subscribe', channel);
  checkEqual([r.successful, r.error], [false, want], `${p.name}: subscribe to ${channel} refused`);
}

async function publishRefused(p, channel, want) {
  if (p.lib === 'cometd') {
    p.client.publish(channel, { clients: 999999 }, () => {});
  } else {
    p.client.publish(channel, { clients: 999999 }).errback(() => {});
  }
  const r = await reply(p, channel);
  checkEqual([r.successful, r.error], [false, want], `${p.name}: publish on ${channel} refused`);
}

// backendPublish publishes through the hub's backend API.
async function backendPublish(url, channel, data) {
  const resp = await fetch(url.replace(/\/cometd$/, '') + '/api/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `apikey ${API_KEY}` },
    body: JSON.stringify({ channel, data }),
  });
  const body = await resp.json();
  checkEqual([resp.status, body], [200, { published: 1 }], `the backend API publishes on ${channel}`);
}

async function tokenScenario(url) {
  check(TOKEN && API_KEY, 'INTEROP_TOKEN and INTEROP_API_KEY are set');
  const peers = makePeers(url, { token: TOKEN });
  await connectAll(url, peers);
  await Promise.all(peers.map((p) => p.subscribe('/user/alice/inbox')));
  for (const p of peers) {
    await subscribeRefused(p, '/user/bob/inbox', '403:/user/bob/inbox:Not your channel');
    await publishRefused(p, '/bayeuxhub/stats', '403:/bayeuxhub/stats:Publishing on this channel is server-only');
  }
  await backendPublish(url, '/user/alice/inbox', { from: 'backend', n: 1 });
  for (const p of peers) {
    const m = await waitStep(`${p.name} receives the backend's message`,
      p.received.waitFor((r) => r.channel === '/user/alice/inbox' && r.data.from === 'backend'));
    checkEqual(m.data, { from: 'backend', n: 1 }, `${p.name} gets the backend's message on alice's channel`);
  }

  // Without the token: refused at handshake, told not to retry, and the
  // libraries obey.
  const anon = [new CometdPeer('cometd-anon-ws', true), new FayePeer('faye-anon-ws', url, true),
    new CometdPeer('cometd-anon-lp', false), new FayePeer('faye-anon-lp', url, false)];
  for (const p of anon) {
    if (p.lib === 'cometd') {
      p.client.configure({ url, logLevel: 'warn' });
      p.client.handshake(() => {});
    } else {
      p.client.connect(() => {});
    }
  }
  for (const p of anon) {
    const r = await reply(p, '/meta/handshake');
    checkEqual([r.successful, r.error, r.advice && r.advice.reconnect], [false, '403::Authentication required', 'none'],
      `${p.name}: handshake without a token refused with reconnect none`);
  }
  await delay(1500);
  info.anonymousHandshakes = Object.fromEntries(anon.map((p) => [p.name, p.wireOut.filter((m) => m.channel === '/meta/handshake').length]));
  for (const p of anon) {
    const n = p.wireOut.filter((m) => m.channel === '/meta/handshake').length;
    check(n <= 2, `${p.name} stops retrying (${n} handshakes in 1.5 s)`);
  }
  await Promise.all(peers.map((p) => p.disconnect()));
}

run('auth.mjs', { token: tokenScenario });
