#!/usr/bin/env node
// Acknowledged delivery with the real npm CometD client and its
// AckExtension. The Go test (test/ack_test.go) puts a loopback proxy between
// this subscriber and the hub that drops a /meta/connect response in flight;
// the publisher talks to the hub directly.
//
// Usage:  node ack.mjs <subscriber-url> <publisher-url> <count>
// Output: one JSON line {"ok":bool,"received":[seq...],"error":...}; exit
// code 0 when every message arrived exactly once and in order.

import { adapt } from 'cometd-nodejs-client';

adapt();
const { CometD, AckExtension } = await import('cometd');

const [subURL, pubURL, countArg] = process.argv.slice(2);
const count = Number(countArg || 50);
const received = [];
let done = false;

function finish(ok, error) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify({ ok, received, error }) + '\n');
  process.exit(ok ? 0 : 1);
}
setTimeout(() => finish(false, `timeout with ${received.length} of ${count} messages`), 30000);

function handshake(cometd) {
  return new Promise((resolve, reject) => {
    cometd.handshake((reply) => (reply.successful ? resolve(reply) : reject(new Error(JSON.stringify(reply)))));
  });
}

const sub = new CometD();
sub.unregisterTransport('websocket');
sub.registerExtension('ack', new AckExtension());
// Retry a failed connect quickly so the test stays short.
sub.configure({ url: subURL, backoffIncrement: 100, maxBackoff: 500 });

const pub = new CometD();
pub.unregisterTransport('websocket');
pub.configure({ url: pubURL });

try {
  const hs = await handshake(sub);
  if (!hs.ext || hs.ext.ack !== true) {
    finish(false, `server did not accept the ack extension: ${JSON.stringify(hs)}`);
  }
  await new Promise((resolve, reject) => {
    sub.subscribe('/ack/test', (m) => {
      received.push(m.data.seq);
      if (received.length >= count) {
        // Give duplicates a moment to show up before judging.
        setTimeout(() => {
          const inOrder = received.length === count && received.every((s, i) => s === i);
          finish(inOrder, inOrder ? undefined : 'not exactly once in order');
        }, 500);
      }
    }, (reply) => (reply.successful ? resolve() : reject(new Error(JSON.stringify(reply)))));
  });
  await handshake(pub);
  // Publish in small bursts so that several connect responses carry messages.
  for (let i = 0; i < count; i++) {
    pub.publish('/ack/test', { seq: i });
    if (i % 5 === 4) await new Promise((r) => setTimeout(r, 20));
  }
} catch (e) {
  finish(false, String(e && e.stack || e));
}
