/**
 * The Redis store: several Node processes on one Redis form one cluster. Every change is
 * one Lua script, so offsets are assigned atomically in Redis (OFF-1, PUB-4), never by a
 * read-then-write across the network. Messages live in a Stream per channel whose entry ids
 * are `<offset>-0`; a hash per channel holds its epoch, head, floor and retention settings.
 * Appends and session changes are announced on one pub/sub channel, so every process wakes
 * its subscriptions and re-reads its sessions' state (CLU-2, CLU-4).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

/** @typedef {import('./types.js').Store} Store */
/** @typedef {import('./types.js').Session} Session */

const newEpoch = () => randomBytes(8).toString('hex'); // EPO-7: 64 random bits

// Shared by the scripts below: create the channel on first use (CHN-3, CHN-4) and raise its
// floor under the settings in force (RET-3, RET-12), never lowering it (RET-8).
const PRELUDE = `
local function channel(ch, candidate)
  local epoch = redis.call('HGET', ch, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('HSET', ch, 'epoch', epoch, 'head', 0, 'floor', 1, 'last_ts', 0)
  end
  return epoch
end
local function trim(ch, msgs, now)
  local floor = tonumber(redis.call('HGET', ch, 'floor'))
  local head = tonumber(redis.call('HGET', ch, 'head'))
  local mm = redis.call('HGET', ch, 'max_messages')
  local ma = redis.call('HGET', ch, 'max_age_s')
  local nf = floor
  if mm and mm ~= '' then nf = math.max(nf, head - tonumber(mm) + 1) end
  if ma and ma ~= '' then
    local cutoff = now - tonumber(ma) * 1000
    local done = false
    while not done and nf <= head do
      local entries = redis.call('XRANGE', msgs, string.format('%d-0', nf), '+', 'COUNT', 200)
      if #entries == 0 then break end
      for _, e in ipairs(entries) do
        local f = e[2]
        local ts
        for i = 1, #f, 2 do if f[i] == 'ts' then ts = tonumber(f[i + 1]) end end
        if ts >= cutoff then done = true; break end
        nf = tonumber(string.match(e[1], '^(%d+)')) + 1
      end
    end
  end
  if nf > head + 1 then nf = head + 1 end
  if nf > floor then
    redis.call('HSET', ch, 'floor', nf)
    redis.call('XTRIM', msgs, 'MINID', string.format('%d-0', nf))
  end
  return nf, head
end
`;

const SCRIPTS = {
  // KEYS: ch, msgs. ARGV: now, window_ms, id ('' for none), data, epoch candidate, idem prefix
  append: `${PRELUDE}
local now, window, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local epoch = channel(KEYS[1], ARGV[5])
trim(KEYS[1], KEYS[2], now)
local ikey = ARGV[6] .. epoch .. ':' .. id
if id ~= '' and window > 0 then
  local known = redis.call('GET', ikey)
  if known then return {epoch, tonumber(known), id, 1} end
end
local head = redis.call('HINCRBY', KEYS[1], 'head', 1)
local ts = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'last_ts')))
redis.call('HSET', KEYS[1], 'last_ts', ts)
local mid = id
if mid == '' then mid = epoch .. '-' .. head end
redis.call('XADD', KEYS[2], string.format('%d-0', head), 'id', mid, 'ts', string.format('%d', ts), 'data', ARGV[4])
if id ~= '' and window > 0 then redis.call('SET', ikey, head, 'PX', window) end
trim(KEYS[1], KEYS[2], now)
return {epoch, head, mid, 0}`,
  // KEYS: ch, msgs. ARGV: now, from, limit, epoch candidate
  read: `${PRELUDE}
local epoch = channel(KEYS[1], ARGV[4])
local floor, head = trim(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local entries = {}
local limit = tonumber(ARGV[3])
if limit > 0 then
  local from = math.max(tonumber(ARGV[2]), floor)
  entries = redis.call('XRANGE', KEYS[2], string.format('%d-0', from), '+', 'COUNT', limit)
end
return {epoch, floor, head, entries}`,
  // KEYS: ch, msgs. ARGV: now, epoch candidate, max_messages, max_age_s ('keep', '' for null, or a number)
  retention: `${PRELUDE}
channel(KEYS[1], ARGV[2])
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]))
if ARGV[3] ~= 'keep' then redis.call('HSET', KEYS[1], 'max_messages', ARGV[3]) end
if ARGV[4] ~= 'keep' then redis.call('HSET', KEYS[1], 'max_age_s', ARGV[4]) end
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return {redis.call('HGET', KEYS[1], 'max_messages') or '', redis.call('HGET', KEYS[1], 'max_age_s') or ''}`,
  // KEYS: sess. ARGV: now, record json, token hash, expires_at, generation, token prefix, cursor prefix
  upsert: `
local now = tonumber(ARGV[1])
local old = redis.call('HMGET', KEYS[1], 'expires_at', 'token_hash', 'generation')
local generation, created = ARGV[5], 1
if old[1] and tonumber(old[1]) > now then
  created = 0
  generation = old[3]
  redis.call('DEL', ARGV[6] .. old[2])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'token_hash', ARGV[3], 'expires_at', ARGV[4], 'generation', generation)
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('SET', ARGV[6] .. ARGV[3], KEYS[1], 'PXAT', ARGV[4])
redis.call('PEXPIREAT', ARGV[7] .. generation, ARGV[4])
return {created, generation}`,
  // KEYS: sess. ARGV: now, token prefix, cursor prefix
  delete: `
local s = redis.call('HMGET', KEYS[1], 'expires_at', 'token_hash', 'generation')
if not s[1] or tonumber(s[1]) <= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], ARGV[2] .. s[2], ARGV[3] .. s[3])
return 1`,
  // KEYS: cursors. ARGV: channel, epoch, offset, ttl_ms for a new key
  ack: `
local old = redis.call('HGET', KEYS[1], ARGV[1])
local offset = tonumber(ARGV[3])
if old then
  local sep = string.find(old, ':', 1, true)
  local o, e = tonumber(string.sub(old, 1, sep - 1)), string.sub(old, sep + 1)
  if e == ARGV[2] and o > offset then offset = o end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', offset) .. ':' .. ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return offset`,
};

/** How many of each script's arguments are keys. */
const SCRIPT_KEYS = { append: 2, read: 2, retention: 2, upsert: 1, delete: 1, ack: 1 };

/** A store failure is `unavailable` (EVT-11, CON-3), not `internal`. */
function unavailable(err) {
  return Object.assign(new Error(`redis: ${err?.message ?? err}`), { storeUnavailable: true, cause: err });
}

/** @implements {Store} */
export class RedisStore {
  /** @param {string} url @param {{prefix?: string}} [options] */
  constructor(url, { prefix = 'replay:' } = {}) {
    this.url = url;
    this.prefix = prefix;
    this.cluster = true;
    this.durable = false;
    this.events = new EventEmitter();
    this.events.setMaxListeners(0);
    const opts = { maxRetriesPerRequest: 2, lazyConnect: true };
    this.redis = new Redis(url, opts);
    this.sub = new Redis(url, opts);
    this.redis.on('error', () => {}); // reported per command as `unavailable`
    this.sub.on('error', () => {});
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.redis.defineCommand(`replay_${name}`, { lua, numberOfKeys: SCRIPT_KEYS[name] });
    }
    this.bus = `${prefix}events`;
  }

  async connect() {
    await Promise.all([this.redis.connect(), this.sub.connect()]);
    this.durable = await this.isDurable();
    this.sub.on('message', (_bus, message) => {
      const kind = message[0];
      const name = message.slice(2);
      this.events.emit(kind === 'a' ? 'append' : 'session', name);
    });
    await this.sub.subscribe(this.bus);
  }

  /** INF-4: durable only with AOF on and no eviction; unknown (CONFIG refused) is not durable. */
  async isDurable() {
    try {
      const [, aof] = await this.redis.config('GET', 'appendonly');
      const [, policy] = await this.redis.config('GET', 'maxmemory-policy');
      return aof === 'yes' && policy === 'noeviction';
    } catch {
      return false;
    }
  }

  /** @param {() => Promise<any>} fn */
  async call(fn) {
    try {
      return await fn();
    } catch (err) {
      throw unavailable(err);
    }
  }

  keys(channel) {
    return [`${this.prefix}ch:${channel}`, `${this.prefix}msgs:${channel}`];
  }

  announce(kind, name) {
    this.events.emit(kind === 'a' ? 'append' : 'session', name); // this node, at once
    this.redis.publish(this.bus, `${kind}:${name}`).catch(() => {});
  }

  async state(channel, now) {
    const r = await this.read(channel, 1, 0, now);
    return { epoch: r.epoch, first: r.first, head: r.head };
  }

  async read(channel, from, limit, now) {
    const [epoch, floor, head, entries] = await this.call(() =>
      /** @type {any} */ (this.redis).replay_read(...this.keys(channel), now, from, limit, newEpoch()),
    );
    const messages = entries.map(([entryId, fields]) => {
      const f = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
      return { offset: Number(entryId.split('-')[0]), id: f.id, ts: Number(f.ts), data: JSON.parse(f.data) };
    });
    return { epoch, first: floor <= head ? floor : null, head, messages };
  }

  async append(channel, { data, id }, { now, windowMs }) {
    const [epoch, offset, mid, dup] = await this.call(() =>
      /** @type {any} */ (this.redis).replay_append(
        ...this.keys(channel), now, windowMs, id ?? '', JSON.stringify(data), newEpoch(), `${this.prefix}idem:${channel}:`,
      ),
    );
    if (!dup) this.announce('a', channel);
    return { epoch, offset, id: mid, duplicate: dup === 1 };
  }

  async setRetention(channel, update, now) {
    const arg = (k) => (k in update ? (update[k] === null ? '' : String(update[k])) : 'keep');
    const [mm, ma] = await this.call(() =>
      /** @type {any} */ (this.redis).replay_retention(...this.keys(channel), now, newEpoch(), arg('max_messages'), arg('max_age_s')),
    );
    this.announce('a', channel); // subscriptions re-read: a raised floor may end one (SIG-2)
    return { max_messages: mm === '' ? null : Number(mm), max_age_s: ma === '' ? null : Number(ma) };
  }

  sessionKey(id) {
    return `${this.prefix}sess:${id}`;
  }

  async upsertSession(record, now) {
    const { token_hash, generation, expires_at, ...visible } = record;
    const [created, gen] = await this.call(() =>
      /** @type {any} */ (this.redis).replay_upsert(
        this.sessionKey(record.session_id), now, JSON.stringify(visible), token_hash, expires_at, generation,
        `${this.prefix}tok:`, `${this.prefix}cur:`,
      ),
    );
    this.announce('s', record.session_id);
    return { created: created === 1, session: { ...record, generation: gen } };
  }

  async session(id, now) {
    const h = await this.call(() => this.redis.hgetall(this.sessionKey(id)));
    if (!h.record || Number(h.expires_at) <= now) return null;
    return { ...JSON.parse(h.record), token_hash: h.token_hash, expires_at: Number(h.expires_at), generation: h.generation };
  }

  async sessionByTokenHash(hash, now) {
    const key = await this.call(() => this.redis.get(`${this.prefix}tok:${hash}`));
    if (!key) return null;
    const s = await this.session(key.slice(`${this.prefix}sess:`.length), now);
    return s && s.token_hash === hash ? s : null;
  }

  async deleteSession(id, now) {
    const done = await this.call(() =>
      /** @type {any} */ (this.redis).replay_delete(this.sessionKey(id), now, `${this.prefix}tok:`, `${this.prefix}cur:`),
    );
    if (done === 1) this.announce('s', id);
    return done === 1;
  }

  async cursor(generation, channel) {
    const v = await this.call(() => this.redis.hget(`${this.prefix}cur:${generation}`, channel));
    if (!v) return null;
    const sep = v.indexOf(':');
    return { offset: Number(v.slice(0, sep)), epoch: v.slice(sep + 1) };
  }

  async ack(generation, channel, epoch, offset) {
    const thirtyDays = 2592000 * 1000;
    const result = await this.call(() =>
      /** @type {any} */ (this.redis).replay_ack(`${this.prefix}cur:${generation}`, channel, epoch, offset, thirtyDays),
    );
    return { epoch, offset: Number(result) };
  }

  onAppend(fn) {
    this.events.on('append', fn);
  }

  onSession(fn) {
    this.events.on('session', fn);
  }

  async close() {
    this.events.removeAllListeners();
    this.sub.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
