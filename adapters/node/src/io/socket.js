/**
 * The Socket.IO side (§5 to §8): the connect handshake, the auto-subscriptions, and the
 * `replay:*` client events, each checked in §6.6's order and processed one at a time per
 * socket (EVT-2).
 */
import { allows } from '../core/grants.js';
import { AlreadySubscribed, BadRequest, Forbidden, NotSubscribed, RateLimited, Unauthorized, asReplayError } from '../core/errors.js';
import { checkAck, resolveStart } from '../core/resolve.js';
import { checkPublishData, checkSchema, singleObjectArgument } from '../core/requests.js';
import { nextVerdict } from './packets.js';
import { Subscription } from './subscription.js';

/**
 * @typedef {import('../stores/types.js').Session} Session
 * @typedef {{service: import('../service.js').ReplayService, notifier: import('./notifier.js').Notifier,
 *   validate: import('./schemas.js').Validate, registry: import('./sessions.js').SessionRegistry}} Context
 * @typedef {{reply: object, after?: () => void}} Outcome
 */

/** One connected socket: its session as last read, its subscriptions, its event queue. */
export class SocketState {
  /** @param {import('socket.io').Socket} socket @param {Session} session */
  constructor(socket, session) {
    this.socket = socket;
    this.session = session;
    /** @type {Map<string, Subscription>} */
    this.subs = new Map();
    this.queue = Promise.resolve();
    this.closed = false;
  }

  /** EVT-2: run `task` after every task queued before it. @param {() => Promise<void>} task */
  enqueue(task) {
    this.queue = this.queue.then(task).catch(() => {});
  }

  /** @param {Subscription} sub */
  forget(sub) {
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
  }

  /** CON-5: end every subscription, silently (the socket is gone). */
  endAll() {
    for (const sub of [...this.subs.values()]) sub.end();
  }
}

/**
 * @param {import('socket.io').Namespace} nsp
 * @param {Context} ctx
 */
export function attachSocketHandlers(nsp, ctx) {
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth;
    const token = auth && typeof auth === 'object' ? /** @type {any} */ (auth).token : undefined;
    ctx.service.authenticate(token).then(
      (session) => {
        if (!session) return next(new Error('unauthorized')); // CON-2
        socket.data.replaySession = session;
        next();
      },
      (err) => next(new Error(asReplayError(err).code === 'unavailable' ? 'unavailable' : 'internal')), // CON-3
    );
  });

  nsp.on('connection', (socket) => {
    const session = socket.data.replaySession;
    if (!session) return;
    const state = new SocketState(socket, session);
    ctx.registry.add(state);
    socket.use((packet, next) => {
      const verdict = nextVerdict(socket.conn); // one per EVENT, whatever its name
      const name = packet[0];
      if (typeof name !== 'string' || !name.startsWith('replay:')) return next(); // EVT-9, EVT-13
      state.enqueue(() => dispatch(ctx, state, name, packet.slice(1), verdict));
    });
    socket.on('disconnect', () => {
      state.closed = true;
      ctx.registry.remove(state);
      state.endAll();
    });
    state.enqueue(() => autoSubscribe(ctx, state)); // AUT-8: before any client event
  });
}

/**
 * @param {Context} ctx
 * @param {SocketState} state
 * @param {string} name
 * @param {unknown[]} args
 * @param {import('./packets.js').Verdict|null} verdict
 */
async function dispatch(ctx, state, name, args, verdict) {
  const ack = typeof args[args.length - 1] === 'function' ? /** @type {Function} */ (args.pop()) : null;
  /** @type {Outcome} */
  let outcome;
  try {
    const handler = HANDLERS[name];
    if (!handler || (handler.feature && !ctx.service.has(handler.feature))) {
      throw new BadRequest(`unknown event ${name}`); // EVT-4, EVT-5
    }
    if (verdict?.binary) throw new BadRequest('binary attachments are not allowed'); // TRN-3
    if (verdict?.error) throw new BadRequest(verdict.error.message); // EVT-12, ROB-7
    const payload = singleObjectArgument(args); // TRN-3
    checkSchema(ctx.validate, handler.schema, payload); // EVT-3
    // EVT-14: the expiry tick disconnects the socket up to a tick late; until then every
    // event of an expired session fails (after EVT-10's shape checks).
    if (state.session.expires_at <= ctx.service.clock()) throw new Unauthorized('the session has expired');
    const badNumbers = (verdict?.badNumbers ?? []).filter((p) => p[0] === 1).map((p) => p.slice(1));
    outcome = await handler.run(ctx, state, /** @type {any} */ (payload), badNumbers);
  } catch (err) {
    outcome = { reply: { ok: false, error: asReplayError(err).toJSON() } }; // ROB-6
  }
  if (ack && !state.closed) ack(outcome.reply);
  if (outcome.after && !state.closed) outcome.after(); // SUB-13: the reply goes first
}

/** @type {Record<string, {schema: string, feature?: string, run: (ctx: Context, state: SocketState, payload: any, badNumbers: any[]) => Promise<Outcome>}>} */
const HANDLERS = {
  'replay:subscribe': { schema: 'subscribe-request', run: subscribe },
  'replay:unsubscribe': { schema: 'unsubscribe-request', run: unsubscribe },
  'replay:ack': { schema: 'ack-request', feature: 'cursors', run: ack },
  'replay:publish': { schema: 'publish-request', feature: 'client-publish', run: publish },
  'replay:history': { schema: 'history-request', feature: 'history', run: history },
};

/** SUB-1's order after the shape: grant, socket, channel state. */
async function subscribe(ctx, state, payload) {
  const { channel } = payload;
  if (!allows(state.session.grants, channel, 'subscribe')) throw new Forbidden(`no subscribe grant for ${channel}`);
  checkSocket(ctx, state, channel);
  const sub = await startSubscription(ctx, state, channel, async (st) => {
    const cursor = payload.from === undefined ? await cursorFor(ctx, state, channel) : null;
    return resolveStart(payload, st, cursor);
  });
  return { reply: { ok: true, ...sub.description }, after: () => sub.start() };
}

/** SUB-3, SUB-15. */
function checkSocket(ctx, state, channel) {
  if (state.subs.has(channel)) throw new AlreadySubscribed(`already subscribed to ${channel}`);
  const max = ctx.service.limits.max_subscriptions;
  if (max !== undefined && state.subs.size >= max) throw new RateLimited(`at most ${max} subscriptions per socket`);
}

/**
 * Read the channel, resolve the start, and register the subscription (not yet started).
 * @returns {Promise<Subscription & {description: object}>}
 */
async function startSubscription(ctx, state, channel, resolve) {
  const st = await ctx.service.state(channel);
  const start = await resolve(st);
  const sub = new Subscription({
    channel, epoch: st.epoch, from: start.from, socketState: state, store: ctx.service.store,
    notifier: ctx.notifier, maxBatch: ctx.service.limits.max_batch, clock: ctx.service.clock,
  });
  state.subs.set(channel, sub);
  const description = { channel, epoch: st.epoch, from: start.from, head: st.head };
  if (start.truncated) description.truncated = start.truncated;
  return Object.assign(sub, { description });
}

/** The session's cursor for the channel, when the server has cursors (FEA-2). */
async function cursorFor(ctx, state, channel) {
  if (!ctx.service.has('cursors')) return null;
  return ctx.service.store.cursor(state.session.generation, channel);
}

/** UNS-7: no grant to check; only the socket's own subscriptions. */
async function unsubscribe(ctx, state, { channel }) {
  const sub = state.subs.get(channel);
  if (!sub) throw new NotSubscribed(`not subscribed to ${channel}`);
  sub.end();
  return { reply: { ok: true } };
}

/** ACK-10: grant, epoch, range. */
async function ack(ctx, state, { channel, offset, epoch }) {
  if (!allows(state.session.grants, channel, 'subscribe')) throw new Forbidden(`no subscribe grant for ${channel}`);
  checkAck({ offset, epoch }, await ctx.service.state(channel));
  const cursor = await ctx.service.store.ack(state.session.generation, channel, epoch, offset);
  return { reply: { ok: true, epoch: cursor.epoch, cursor: cursor.offset } };
}

/** PUB-8: size, grant, then the duplicate lookup. */
async function publish(ctx, state, payload, badNumbers) {
  checkPublishData(payload, badNumbers, ctx.service.limits.max_payload_bytes);
  if (!allows(state.session.grants, payload.channel, 'publish')) throw new Forbidden(`no publish grant for ${payload.channel}`);
  const stored = await ctx.service.publish(payload.channel, { data: payload.data, id: payload.id });
  return { reply: { ok: true, ...stored } };
}

/** HIS-11: grant, then the channel state. */
async function history(ctx, state, payload) {
  if (!allows(state.session.grants, payload.channel, 'history')) throw new Forbidden(`no history grant for ${payload.channel}`);
  const { channel, ...request } = payload;
  return { reply: { ok: true, ...(await ctx.service.history(channel, request)) } };
}

/** AUT-1 to AUT-9: every entry, in order, before the socket's first event. */
async function autoSubscribe(ctx, state) {
  for (const entry of state.session.subscribe) {
    if (state.closed) return;
    const { channel } = entry;
    try {
      if (!allows(state.session.grants, channel, 'subscribe')) throw new Forbidden(`no subscribe grant for ${channel}`);
      checkSocket(ctx, state, channel);
      const sub = await startSubscription(ctx, state, channel, async (st) => {
        const cursor = await cursorFor(ctx, state, channel);
        if (cursor && cursor.epoch === st.epoch) return resolveStart({ allow_truncation: entry.allow_truncation }, st, cursor);
        return resolveStart({ from: entry.from ?? 'latest', epoch: entry.epoch, allow_truncation: entry.allow_truncation }, st, null);
      });
      if (state.closed) return sub.end();
      state.socket.emit('replay:subscribed', sub.description); // AUT-2
      sub.start();
    } catch (err) {
      if (!state.closed) state.socket.emit('replay:unsubscribed', { channel, reason: asReplayError(err).code }); // AUT-4
    }
  }
}
