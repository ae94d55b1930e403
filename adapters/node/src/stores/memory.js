/**
 * The in-memory store (the default): one process, `durable: false`. Every epoch is drawn at
 * random, so a restarted process gives every channel a new epoch (EPO-3, DUR-3).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { NO_RETENTION, firstOf, mergeRetention, nextFloor } from '../core/retention.js';

/** @typedef {import('./types.js').Store} Store */

const newEpoch = () => randomBytes(8).toString('hex'); // EPO-7: 64 random bits

/** @implements {Store} */
export class MemoryStore {
  constructor() {
    this.durable = false;
    this.cluster = false;
    /** @type {Map<string, any>} */
    this.channels = new Map();
    /** @type {Map<string, any>} session_id -> session */
    this.sessions = new Map();
    /** @type {Map<string, string>} token hash -> session_id */
    this.tokens = new Map();
    /** @type {Map<string, Map<string, {epoch: string, offset: number}>>} generation -> channel -> cursor */
    this.cursors = new Map();
    this.events = new EventEmitter();
    this.events.setMaxListeners(0);
    this.idPrefix = randomBytes(6).toString('hex');
    this.idCounter = 0;
  }

  async connect() {}

  /** The channel's record, created empty with an epoch on first use (CHN-3, CHN-4). */
  channel(name, now) {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = { epoch: newEpoch(), head: 0, floor: 1, lastTs: 0, messages: new Map(), keys: new Map(), retention: NO_RETENTION };
      this.channels.set(name, ch);
    }
    this.trim(ch, now);
    return ch;
  }

  trim(ch, now) {
    const floor = nextFloor(ch, ch.retention, now, (o) => ch.messages.get(o)?.ts);
    for (let o = ch.floor; o < floor; o++) ch.messages.delete(o);
    ch.floor = floor;
  }

  snapshot(ch) {
    return { epoch: ch.epoch, first: firstOf(ch), head: ch.head };
  }

  async state(name, now) {
    return this.snapshot(this.channel(name, now));
  }

  async append(name, { data, id }, { now, windowMs }) {
    const ch = this.channel(name, now);
    if (id !== undefined && windowMs > 0) {
      for (const [key, k] of ch.keys) {
        if (k.expires > now) break; // insertion order = expiry order: the window is constant
        ch.keys.delete(key);
      }
      const known = ch.keys.get(id);
      if (known && known.expires > now) return { epoch: ch.epoch, offset: known.offset, id, duplicate: true };
    }
    const offset = ch.head + 1;
    const ts = Math.max(now, ch.lastTs); // MSG-5: ts never decreases
    const message = { offset, id: id ?? `${this.idPrefix}-${++this.idCounter}`, ts, data };
    ch.messages.set(offset, message);
    ch.head = offset;
    ch.lastTs = ts;
    if (id !== undefined && windowMs > 0) ch.keys.set(id, { offset, expires: now + windowMs });
    this.trim(ch, now);
    this.events.emit('append', name);
    return { epoch: ch.epoch, offset, id: message.id, duplicate: false };
  }

  async read(name, from, limit, now) {
    const ch = this.channel(name, now);
    const messages = [];
    for (let o = Math.max(from, ch.floor); o <= ch.head && messages.length < limit; o++) messages.push(ch.messages.get(o));
    return { ...this.snapshot(ch), messages };
  }

  async setRetention(name, update, now) {
    const ch = this.channel(name, now); // trims under the old settings first (RET-8)
    ch.retention = mergeRetention(ch.retention, update);
    this.trim(ch, now); // RET-6: in force before the reply
    return { ...ch.retention };
  }

  async upsertSession(record, now) {
    const live = this.liveSession(record.session_id, now);
    if (live) this.tokens.delete(live.token_hash); // SES-4: the old token stops working
    const session = { ...record, generation: live ? live.generation : record.generation };
    this.sessions.set(session.session_id, session);
    this.tokens.set(session.token_hash, session.session_id);
    this.events.emit('session', session.session_id);
    return { created: !live, session };
  }

  liveSession(id, now) {
    const s = this.sessions.get(id);
    if (!s) return null;
    if (s.expires_at > now) return s;
    this.dropSession(s);
    return null;
  }

  dropSession(s) {
    this.sessions.delete(s.session_id);
    this.tokens.delete(s.token_hash);
    this.cursors.delete(s.generation);
  }

  async session(id, now) {
    return this.liveSession(id, now);
  }

  async sessionByTokenHash(hash, now) {
    const id = this.tokens.get(hash);
    return id === undefined ? null : this.liveSession(id, now);
  }

  async deleteSession(id, now) {
    const s = this.liveSession(id, now);
    if (!s) return false;
    this.dropSession(s);
    this.events.emit('session', id);
    return true;
  }

  async cursor(generation, name) {
    return this.cursors.get(generation)?.get(name) ?? null;
  }

  async ack(generation, name, epoch, offset) {
    let mine = this.cursors.get(generation);
    if (!mine) this.cursors.set(generation, (mine = new Map()));
    const old = mine.get(name);
    const cursor = old && old.epoch === epoch ? { epoch, offset: Math.max(old.offset, offset) } : { epoch, offset }; // ACK-4, ACK-7
    mine.set(name, cursor);
    return cursor;
  }

  /** @param {(channel: string) => void} fn */
  onAppend(fn) {
    this.events.on('append', fn);
  }

  /** @param {(sessionId: string) => void} fn */
  onSession(fn) {
    this.events.on('session', fn);
  }

  async close() {
    this.events.removeAllListeners();
  }
}
