// A stand-in for socket.io-client's socket: the test plays the server. `reply(event,
// payload)` decides each acknowledgement; `push(event, data)` sends a server event.

export class FakeSocket {
  constructor(options, server) {
    this.options = options;
    this.server = server;
    this.connected = false;
    this.handlers = new Map();
    /** Every client event, in order: {event, payload}. */
    this.sent = [];
    this.tokens = [];
  }
  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, []);
    this.handlers.get(name).push(fn);
    return this;
  }
  fire(name, ...args) {
    for (const fn of this.handlers.get(name) ?? []) fn(...args);
  }
  connect() {
    this.options.auth((auth) => this.tokens.push(auth.token));
    queueMicrotask(() => {
      if (this.server.refuse) return this.fire("connect_error", new Error(this.server.refuse));
      this.connected = true;
      this.fire("connect");
    });
    return this;
  }
  disconnect() {
    if (!this.connected) return this;
    this.connected = false;
    this.fire("disconnect", "io client disconnect");
    return this;
  }
  /** The transport dropped (what a cut looks like to the client). */
  drop() {
    this.connected = false;
    this.fire("disconnect", "transport close");
  }
  emit(event, payload, ack) {
    this.sent.push({ event, payload });
    const answer = this.server.reply(event, payload);
    if (ack && answer !== undefined) {
      queueMicrotask(() => {
        ack(answer);
        this.server.afterReply?.(event, payload, this); // in the same task, as one read would
      });
    }
    return this;
  }
  push(event, data) {
    this.fire(event, data);
  }
}

/** `connect()` options that wire a client to a FakeSocket and fast timers. */
export function fakeClient(server) {
  const holder = {};
  const io = (url, options) => (holder.socket = new FakeSocket(options, server));
  return { holder, options: { io, minDelay: 1, maxDelay: 5, jitter: 0, requestTimeoutMs: 200 } };
}

export const until = async (condition, ms = 2000) => {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
};

export const messages = (epoch, channel, ...offsets) => ({
  channel,
  epoch,
  messages: offsets.map((offset) => ({ offset, id: `m${offset}`, ts: 0, data: offset })),
});
