/**
 * The operations both transports share (register, delete, publish, history, retention,
 * authenticate), each doing its checks in the spec's order once the transport has checked
 * the request's shape. Holds no socket and no HTTP object.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { NotFound } from './core/errors.js';
import { resolveHistoryStart } from './core/resolve.js';
import { registrationTtl } from './core/requests.js';

/** @typedef {import('./stores/types.js').Store} Store */
/** @typedef {import('./stores/types.js').Session} Session */

/** SES-9: tokens are kept only as their SHA-256. @param {string} token */
export const hashToken = (token) => createHash('sha256').update(token).digest('hex');

export class ReplayService {
  /**
   * @param {{store: Store, limits: typeof import('./core/requests.js').DEFAULT_LIMITS,
   *   features: string[], clock?: () => number,
   *   onSessionChanged?: (sessionId: string) => Promise<void>}} options
   */
  constructor({ store, limits, features, clock = Date.now, onSessionChanged = async () => {} }) {
    this.store = store;
    this.limits = limits;
    this.features = features;
    this.clock = clock;
    this.onSessionChanged = onSessionChanged;
  }

  /** @param {string} feature */
  has(feature) {
    return this.features.includes(feature);
  }

  get windowMs() {
    return this.has('idempotency') ? this.limits.idempotency_window_s * 1000 : 0;
  }

  /**
   * SES-1 to SES-7 (the body already matched its schema).
   * @param {any} body
   * @returns {Promise<{status: number, body: {session_id: string, token: string, expires_at: number}}>}
   */
  async register(body) {
    const ttl = registrationTtl(body, this.limits);
    const now = this.clock();
    const token = randomBytes(24).toString('base64url'); // SES-8: 192 bits
    /** @type {Session} */
    const record = {
      session_id: body.session_id ?? randomUUID(),
      client_id: body.client_id,
      grants: body.grants,
      subscribe: body.subscribe ?? [],
      expires_at: now + ttl * 1000, // SES-5
      token_hash: hashToken(token),
      generation: randomBytes(12).toString('hex'),
    };
    const { created, session } = await this.store.upsertSession(record, now);
    await this.onSessionChanged(session.session_id); // ACC-5: before the answer, on this node
    return {
      status: created ? 201 : 200,
      body: { session_id: session.session_id, token, expires_at: session.expires_at },
    };
  }

  /** SES-13. @param {string} sessionId */
  async deleteSession(sessionId) {
    if (!(await this.store.deleteSession(sessionId, this.clock()))) throw new NotFound('no such live session');
    await this.onSessionChanged(sessionId);
  }

  /**
   * CON-1, CON-2: the live session a token belongs to, or null.
   * @param {unknown} token
   */
  async authenticate(token) {
    if (typeof token !== 'string' || token.length === 0) return null;
    return this.store.sessionByTokenHash(hashToken(token), this.clock());
  }

  /** @param {string} sessionId */
  async session(sessionId) {
    return this.store.session(sessionId, this.clock());
  }

  /**
   * The store side of a publish (PUB-1, PUB-4, IDM-6, IDM-7); every check came before.
   * @param {string} channel
   * @param {{data: unknown, id?: string}} payload
   */
  async publish(channel, payload) {
    // Without `idempotency` windowMs is 0: the id is the message's id (MSG-3), never a key.
    const stored = await this.store.append(channel, { data: payload.data, id: payload.id }, { now: this.clock(), windowMs: this.windowMs });
    return { channel, offset: stored.offset, epoch: stored.epoch, id: stored.id, duplicate: stored.duplicate };
  }

  /**
   * HIS-4 to HIS-10, after the grant (socket) or the query (HTTP).
   * @param {string} channel
   * @param {{from?: number|'beginning', epoch?: string, limit?: number}} request
   */
  async history(channel, request) {
    const max = this.limits.max_history_limit;
    const limit = Math.min(request.limit ?? Math.min(100, max), max);
    let state = await this.store.state(channel, this.clock());
    for (;;) {
      const from = resolveHistoryStart(request, state);
      const read = await this.store.read(channel, from, limit, this.clock());
      // HIS-5: reply with the state the messages were read in; if retention or an epoch
      // change moved past `from` in between, resolve again against that state.
      const lowest = read.first ?? read.head + 1;
      if (read.epoch === state.epoch && lowest <= from) {
        return { channel, epoch: read.epoch, first: read.first, head: read.head, messages: read.messages };
      }
      state = read;
    }
  }

  /**
   * RET-1, RET-6 (the body already matched its schema).
   * @param {string} channel
   * @param {{max_messages?: number|null, max_age_s?: number|null}} body
   */
  async setRetention(channel, body) {
    const settings = await this.store.setRetention(channel, body, this.clock());
    return { channel, ...settings };
  }

  /** A never-used channel's state, for the transports that need one (CHN-3). @param {string} channel */
  async state(channel) {
    return this.store.state(channel, this.clock());
  }

  info(version) {
    return {
      protocol: 'replay/1',
      implementation: { name: 'socketio-replay-node', version },
      namespace: '/',
      durable: this.store.durable,
      features: this.features,
      limits: { ...this.limits },
    };
  }
}

