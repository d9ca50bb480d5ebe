// Faye's NodeAdapter on a loopback port, mount /cometd, long-poll timeout
// 30 s: the comparison server for test/bench/run.
//
//   node server.js [--port 8082]
'use strict';

const http = require('http');
const faye = require('faye');

let port = 8082;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port' && i + 1 < args.length) port = parseInt(args[++i], 10);
  else if (args[i].startsWith('--port=')) port = parseInt(args[i].slice(7), 10);
}

const bayeux = new faye.NodeAdapter({ mount: '/cometd', timeout: 30 });
const server = http.createServer();
bayeux.attach(server);
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => {
  console.log(`faye ${require('faye/package.json').version}: serving http://127.0.0.1:${port}/cometd`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
