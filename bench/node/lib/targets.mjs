// How the load generators speak to each kind of server: the reference (replay/1: a session
// registered over HTTP, then replay:subscribe), the stock peer (peer.mjs: a room named in
// the handshake, HTTP publish) and a bare python-socketio server (bench/_bare_server.py: the
// stock peer's shape plus `auth: {token}`, checked on connect). All get the same
// socket.io-client options.
import http from "node:http";
import { io } from "socket.io-client";

/**
 * @typedef {{name: string, kind: "reference" | "stock" | "bare", url: string, api_key?: string}} Target
 * @typedef {(data: any, offset?: number) => void} OnData
 */

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/**
 * POST a JSON body; resolve with the status and the parsed answer.
 * @param {string} url
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 * @returns {Promise<{status: number, body: any}>}
 */
export function postJson(url, body, headers = {}) {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": payload.length, ...headers },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
      });
    });
    req.end(payload);
  });
}

/** @param {Target} target */
function bearer(target) {
  return { authorization: `Bearer ${target.api_key}` };
}

/**
 * A function that publishes one message to `channel` and resolves with the server's answer.
 * @param {Target} target
 * @param {string} channel
 * @returns {(data: any) => Promise<any>}
 */
export function publisher(target, channel) {
  const path = target.kind === "reference"
    ? `${target.url}/replay/v1/channels/${encodeURIComponent(channel)}/messages`
    : `${target.url}/publish/${encodeURIComponent(channel)}`;
  const headers = target.kind === "reference" ? bearer(target) : {};
  return async (data) => {
    const { status, body } = await postJson(path, { data }, headers);
    if (status !== 201) throw new Error(`publish answered ${status}: ${JSON.stringify(body)}`);
    return body;
  };
}

/**
 * Register a replay session allowed to subscribe to everything; resolve with its token.
 * @param {Target} target
 * @returns {Promise<string>}
 */
export async function register(target) {
  const grants = [{ channels: "*", actions: ["subscribe", "publish"] }];
  const { status, body } = await postJson(
    `${target.url}/replay/v1/sessions`, { client_id: "bench", grants }, bearer(target));
  if (status !== 201 && status !== 200) throw new Error(`sessions answered ${status}`);
  return body.token;
}

/**
 * Connect one socket.io-client socket (WebSocket only, no reconnection).
 * @param {string} url
 * @param {object} options more socket.io-client options (auth, query)
 */
export function connect(url, options) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, ...options });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

/**
 * Connect a socket that receives the live messages of `channel`, calling `onData` for each.
 * The reference's socket subscribes from "latest" (or `from`/`epoch` when given).
 * @param {Target} target
 * @param {string} channel
 * @param {OnData} onData
 * @param {{from?: number | "latest", epoch?: string}} [start]
 */
export async function subscriber(target, channel, onData, start = { from: "latest" }) {
  if (target.kind !== "reference") {
    const auth = target.kind === "bare" ? { auth: { token: target.api_key } } : {};
    const socket = await connect(target.url, { query: { room: channel }, ...auth });
    socket.on("message", (data) => onData(data));
    return socket;
  }
  const socket = await connect(target.url, { auth: { token: await register(target) } });
  await subscribe(socket, channel, onData, start);
  return socket;
}

/**
 * Subscribe a connected replay/1 socket to `channel`, calling `onData` for each message.
 * @param {import("socket.io-client").Socket} socket
 * @param {string} channel
 * @param {OnData} onData
 * @param {{from?: number | "latest", epoch?: string}} [start]
 */
export async function subscribe(socket, channel, onData, start = { from: "latest" }) {
  socket.on("replay:messages", (event) => {
    for (const message of event.messages) onData(message.data, message.offset);
  });
  const reply = await socket.emitWithAck("replay:subscribe", { channel, ...start });
  if (!reply.ok) throw new Error(`replay:subscribe failed: ${JSON.stringify(reply)}`);
}

/**
 * Run `task(i)` for i in [0, count) with at most `limit` in flight; resolve with the results.
 * @template T
 * @param {number} count
 * @param {number} limit
 * @param {(i: number) => Promise<T>} task
 * @returns {Promise<T[]>}
 */
export async function pool(count, limit, task) {
  const results = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}
