/**
 * The sockets of each session on this node, kept in step with the session as stored: a
 * deleted, expired or replaced session's sockets are disconnected (SES-11, SES-15), and
 * narrowed grants end the subscriptions they no longer cover (ACC-6).
 */
import { allows } from '../core/grants.js';

/** SES-11: how often connected sessions are checked against their `expires_at`. */
const EXPIRY_TICK_MS = 200;
/** A safety net behind the store's notifications: every session is read again this often. */
const SWEEP_MS = 2000;

export class SessionRegistry {
  /** @param {{service: import('../service.js').ReplayService}} options */
  constructor({ service }) {
    this.service = service;
    /** @type {Map<string, Set<import('./socket.js').SocketState>>} */
    this.bySession = new Map();
    this.expiryTimer = setInterval(() => this.expire(), EXPIRY_TICK_MS).unref();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** @param {import('./socket.js').SocketState} state */
  add(state) {
    const id = state.session.session_id;
    let set = this.bySession.get(id);
    if (!set) this.bySession.set(id, (set = new Set()));
    set.add(state);
  }

  /** @param {import('./socket.js').SocketState} state */
  remove(state) {
    const id = state.session.session_id;
    const set = this.bySession.get(id);
    set?.delete(state);
    if (set?.size === 0) this.bySession.delete(id);
  }

  /**
   * Read the session again and apply it to its sockets on this node.
   * @param {string} sessionId
   */
  async refresh(sessionId) {
    const states = this.bySession.get(sessionId);
    if (!states) return;
    const session = await this.service.session(sessionId);
    for (const state of [...states]) {
      if (!session || session.generation !== state.session.generation) {
        disconnect(state);
        continue;
      }
      state.session = session;
      for (const sub of [...state.subs.values()]) {
        if (!allows(session.grants, sub.channel, 'subscribe')) sub.end('revoked'); // ACC-6
      }
    }
  }

  expire() {
    const now = this.service.clock();
    for (const states of this.bySession.values()) {
      for (const state of [...states]) if (state.session.expires_at <= now) disconnect(state);
    }
  }

  sweep() {
    for (const id of [...this.bySession.keys()]) this.refresh(id).catch(() => {});
  }

  close() {
    clearInterval(this.expiryTimer);
    clearInterval(this.sweepTimer);
  }
}

/** SES-15: nothing more is delivered, then the connection goes. */
function disconnect(state) {
  state.closed = true;
  state.endAll();
  state.socket.disconnect(true);
}
