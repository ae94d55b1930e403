/**
 * EVT-12 needs each event's source text: socket.io-parser decodes with JSON.parse, which
 * keeps the last of two equal names and lets a lone surrogate through. This module reads
 * every Engine.IO message of a connection as it arrives (the engine emits `packet` before
 * socket.io decodes it), scans the EVENT packets of namespace `/` with the I-JSON reader,
 * and queues one verdict per EVENT in arrival order; the namespace middleware takes them off
 * in the same order, since socket.io dispatches a connection's events in order.
 */
import { scanJson } from '../core/ijson.js';

/**
 * @typedef {{binary?: true, error?: Error, badNumbers?: Array<Array<string|number>>}} Verdict
 */

const QUEUES = new WeakMap();

/**
 * Start inspecting the connections of an engine.io server.
 * @param {import('engine.io').Server} engine
 */
export function inspectPackets(engine) {
  engine.on('connection', (conn) => {
    /** @type {Verdict[]} */
    const queue = [];
    QUEUES.set(conn, queue);
    conn.on('packet', (packet) => {
      if (packet.type !== 'message' || typeof packet.data !== 'string') return;
      const verdict = inspect(packet.data);
      if (verdict) queue.push(verdict);
    });
  });
}

/**
 * The verdict for the next EVENT of a connection, or null when the connection was not
 * inspected (then only JSON.parse's reading is available).
 * @param {object} conn an engine.io socket
 * @returns {Verdict|null}
 */
export function nextVerdict(conn) {
  return QUEUES.get(conn)?.shift() ?? null;
}

/**
 * @param {string} text one socket.io packet as encoded by socket.io-parser
 * @returns {Verdict|null} null for packets that are not EVENTs of namespace `/`
 */
export function inspect(text) {
  const type = text[0];
  if (type !== '2' && type !== '5') return null;
  let i = 1;
  if (type === '5') {
    while (i < text.length && text[i] !== '-') i++;
    i++;
  }
  if (text[i] === '/') {
    const comma = text.indexOf(',', i);
    const nsp = comma === -1 ? text.slice(i) : text.slice(i, comma);
    if (nsp !== '/') return null;
    i = comma === -1 ? text.length : comma + 1;
  }
  while (i < text.length && text[i] >= '0' && text[i] <= '9') i++;
  if (type === '5') return { binary: true };
  try {
    const { badNumbers } = scanJson(text.slice(i));
    return { badNumbers };
  } catch (error) {
    return { error: /** @type {Error} */ (error) };
  }
}
