#!/usr/bin/env node
// A standalone replay/1 server: a plain http server, socket.io on it, replay attached.
// Usage: replay-server --port 8080 --api-key KEY [--host 127.0.0.1] [--store memory|redis://...]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { attachReplay } from '../src/index.js';
import { DEFAULT_LIMITS, transportBound } from '../src/core/requests.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    'api-key': { type: 'string', default: process.env.REPLAY_API_KEY },
    store: { type: 'string', default: 'memory' },
  },
});
if (!values['api-key']) {
  console.error('replay-server: --api-key (or REPLAY_API_KEY) is required');
  process.exit(2);
}

let handler = (req, res) => {
  res.writeHead(503).end();
};
const server = createServer((req, res) => handler(req, res));
const io = new Server(server, { maxHttpBufferSize: transportBound(DEFAULT_LIMITS), serveClient: false });
const replay = await attachReplay(io, { apiKey: values['api-key'], store: values.store });
handler = replay.handler;

server.listen(Number(values.port), values.host, () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address()); // --port 0 picks one
  const store = values.store.replace(/\/\/.*@/, '//'); // never print a Redis password
  console.log(`replay-server (node, store ${store}) listening on http://${values.host}:${port}`);
});

const stop = async () => {
  io.close();
  await replay.close().catch(() => {});
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
