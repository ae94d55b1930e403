"""The Lua scripts of ``RedisStore``: every read-modify-write of the store is one of these.

Redis runs a script atomically, so each one is a single step that no other client can observe
half done (OFF-1, PUB-4, ACK-4, SES-3). Every script touches the keys of one channel or of one
session only, all under one hash tag, so each runs on a single slot of a Redis Cluster.

Channel keys (``KEYS[1]`` meta hash, ``KEYS[2]`` stream, ``KEYS[3]`` an idempotency key):

- meta: ``epoch``, ``head``, ``low`` (the lowest offset not trimmed), ``last_ts``,
  ``max_messages``, ``max_age_s`` and ``life`` (see below);
- stream: one entry per message, with the id ``<offset>-0`` and the fields ``id``, ``ts``,
  ``data`` (compact JSON text) and ``size``. Its entries are exactly ``low .. head``: appends
  add ``head + 1``, retention only removes a prefix (RET-4).

Every channel script starts with ``open_channel``, which creates the channel with the caller's
random epoch on first touch (CHN-3, EPO-4) and recreates it, deleting the stream, whenever its
history may be lost (EPO-3, DUR-3): when the meta hash is gone (data wiped, or Redis restarted
without persistence), when the stream no longer holds ``low .. head`` (entries evicted), or
when the channel was created while Redis did not persist its data and Redis has restarted
since (``life`` holds the run id of that Redis process: a snapshot it reloads is stale).
Deleting the stream there means no entry of a lost epoch can ever be read in the new one.

Channel ``ARGV``: ``[1]`` a fresh random epoch, ``[2]`` ``"1"`` when the store is not durable,
``[3]`` the caller's clock (ms), then each script's own arguments.
"""

from __future__ import annotations

_CHANNEL = """
local meta, stream = KEYS[1], KEYS[2]
local now = tonumber(ARGV[3])

local function fmt(n) return string.format('%d', n) end

local function run_id()
  local info = redis.pcall('INFO', 'server')
  if type(info) ~= 'string' then return '' end
  return string.match(info, 'run_id:(%x+)') or ''
end

local function open_channel()
  local volatile = ARGV[2] == '1'
  local f = redis.call('HMGET', meta, 'epoch', 'head', 'low', 'last_ts', 'life',
                       'max_messages', 'max_age_s')
  if f[1] then
    local ch = {epoch = f[1], head = tonumber(f[2]), low = tonumber(f[3]),
                last_ts = tonumber(f[4]), max_messages = tonumber(f[6]),
                max_age_s = tonumber(f[7])}
    local life = f[5] or ''
    local intact = redis.call('XLEN', stream) == ch.head - ch.low + 1
    if intact and life ~= '' then intact = life == run_id() end
    if intact then
      if volatile ~= (life ~= '') then  -- persistence was switched on or off since
        redis.call('HSET', meta, 'life', volatile and run_id() or '')
      end
      return ch
    end
  end
  -- A write Redis may refuse when out of memory goes first: once a script has written,
  -- Redis lets it finish whatever it allocates.
  redis.call('HSET', meta, 'epoch', ARGV[1], 'head', 0, 'low', 1, 'last_ts', 0,
             'life', volatile and run_id() or '')
  redis.call('HDEL', meta, 'max_messages', 'max_age_s')
  redis.call('DEL', stream)  -- EPO-3: nothing of a lost epoch leaks into the new one
  return {epoch = ARGV[1], head = 0, low = 1, last_ts = 0}
end

local function ts_at(offset)
  local id = fmt(offset) .. '-0'
  return tonumber(redis.call('XRANGE', stream, id, id)[1][2][4])
end

local function drop_below(ch, offset)
  if offset > ch.low then
    redis.call('XTRIM', stream, 'MINID', fmt(offset) .. '-0')
    ch.low = offset
    redis.call('HSET', meta, 'low', fmt(offset))
  end
end

-- RET-12 by count, RET-3 by age. ts never decreases along the stream (MSG-5), so the old
-- messages are a prefix (RET-4) and a bisection over the dense offsets finds its end.
local function trim(ch, by_count)
  if by_count and ch.max_messages then drop_below(ch, ch.head - ch.max_messages + 1) end
  if ch.max_age_s and ch.low <= ch.head then
    local cutoff = now - ch.max_age_s * 1000
    if ts_at(ch.low) < cutoff then
      local lo, hi = ch.low + 1, ch.head + 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if ts_at(mid) < cutoff then lo = mid + 1 else hi = mid end
      end
      drop_below(ch, lo)
    end
  end
end
"""

APPEND = (
    _CHANNEL
    + """
-- ARGV[4] id, [5] data, [6] size, [7] idempotency window (ms); KEYS[3] the id's key, if any
local ch = open_channel()
if KEYS[3] then
  local known = redis.call('GET', KEYS[3])
  if known then
    local offset, expires, epoch = string.match(known, '^(%d+):(%d+):(.+)$')
    if epoch == ch.epoch and tonumber(expires) > now then  -- IDM-9: not across epochs
      return {ch.epoch, tonumber(offset), 1}  -- IDM-6, IDM-5: the key outlives the message
    end
  end
end
local offset, ts = ch.head + 1, math.max(now, ch.last_ts)  -- OFF-2; MSG-4, MSG-5
redis.call('XADD', stream, fmt(offset) .. '-0',
           'id', ARGV[4], 'ts', fmt(ts), 'data', ARGV[5], 'size', ARGV[6])
redis.call('HSET', meta, 'head', fmt(offset), 'last_ts', fmt(ts))
ch.head = offset
if KEYS[3] then
  local window = tonumber(ARGV[7])
  local value = fmt(offset) .. ':' .. fmt(now + window) .. ':' .. ch.epoch
  redis.call('SET', KEYS[3], value, 'PX', fmt(window))
end
trim(ch, true)
return {ch.epoch, offset, 0}
"""
)

APPEND_BATCH = (
    _CHANNEL
    + """
-- ARGV[4] idempotency window (ms), then per entry four arguments: id, data, size and the
-- index in KEYS of its id's key ("0" when it has none). One script, so the batch is atomic and
-- contiguous (BAT-2, BAT-3); entries go in order, so an id an earlier entry set is seen as a
-- duplicate of it (BAT-8). Returns the epoch, then offset and duplicate flag per entry.
local ch = open_channel()
local window = tonumber(ARGV[4])
local out = {ch.epoch}
local ts = math.max(now, ch.last_ts)  -- MSG-4, MSG-5: one clock reading for the batch
for i = 5, #ARGV, 4 do
  local key = tonumber(ARGV[i + 3])
  local offset, duplicate = nil, 0
  if key > 0 then
    local known = redis.call('GET', KEYS[key])
    if known then
      local at, expires, epoch = string.match(known, '^(%d+):(%d+):(.+)$')
      if epoch == ch.epoch and tonumber(expires) > now then  -- IDM-9, IDM-6, IDM-5
        offset, duplicate = tonumber(at), 1
      end
    end
  end
  if not offset then
    offset = ch.head + 1  -- OFF-2
    redis.call('XADD', stream, fmt(offset) .. '-0',
               'id', ARGV[i], 'ts', fmt(ts), 'data', ARGV[i + 1], 'size', ARGV[i + 2])
    ch.head = offset
    if key > 0 then
      local value = fmt(offset) .. ':' .. fmt(now + window) .. ':' .. ch.epoch
      redis.call('SET', KEYS[key], value, 'PX', fmt(window))
    end
  end
  out[#out + 1] = offset
  out[#out + 1] = duplicate
end
redis.call('HSET', meta, 'head', fmt(ch.head), 'last_ts', fmt(ts))
trim(ch, true)  -- BAT-11: once, after the whole batch
return out
"""
)

READ = (
    _CHANNEL
    + """
-- ARGV[4] start, [5] limit. Returns epoch, low, head and the messages from start, each as
-- the JSON text [id, ts, size, data], in one state of the channel (HIS-5). One string per
-- message keeps the reply cheap to parse; the offsets are start, start + 1, ... (dense).
local ch = open_channel()
trim(ch, false)  -- RET-3 holds without another append
local start, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local messages = {}
if limit > 0 and start >= ch.low and start <= ch.head then
  local entries = redis.call('XRANGE', stream, fmt(start) .. '-0', '+', 'COUNT', limit)
  for i, entry in ipairs(entries) do
    local f = entry[2]  -- id, ts, data, size: the order XADD wrote them in
    messages[i] = '[' .. cjson.encode(f[2]) .. ',' .. f[4] .. ',' .. f[8] .. ',' .. f[6] .. ']'
  end
end
return {ch.epoch, ch.low, ch.head, messages}
"""
)

RETENTION = (
    _CHANNEL
    + """
-- ARGV[4] "1" to set max_messages to ARGV[5] ("" for no limit); [6], [7] likewise max_age_s
local ch = open_channel()
trim(ch, false)  -- RET-8: what the limits in force removed stays removed, read or not
local function set(flag, field, value)
  if flag ~= '1' then return end  -- RET-1: an omitted member keeps its value
  if value == '' then
    redis.call('HDEL', meta, field)
  else
    redis.call('HSET', meta, field, value)
  end
  ch[field] = tonumber(value)
end
set(ARGV[4], 'max_messages', ARGV[5])
set(ARGV[6], 'max_age_s', ARGV[7])
trim(ch, true)  -- RET-6: applies at once
return {ch.max_messages or false, ch.max_age_s or false}
"""
)

# Session scripts: KEYS[1] the session hash, KEYS[2] its cursors hash (field = channel, value
# = "<offset>:<epoch>"). The token-hash index key lives in another slot and is written by the
# caller around the script; readers check it against the session's own ``token_hash``.

UPSERT_SESSION = """
-- ARGV[1] now, [2] when Redis may delete the session (ms), [3] the incarnation of a new session,
-- then the session's field/value pairs
local old = redis.call('HMGET', KEYS[1], 'expires_at', 'token_hash')
local created = not old[1] or tonumber(old[1]) <= tonumber(ARGV[1])  -- expired = absent
redis.call('HSET', KEYS[1], unpack(ARGV, 4))  -- SES-2: every field replaced, cursors kept
if created then  -- SES-1, SES-16, SES-17: a new session, no cursors
  redis.call('HSET', KEYS[1], 'incarnation', ARGV[3])
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
return {created and 1 or 0, old[2]}
"""

DELETE_SESSION = """
local old = redis.call('HMGET', KEYS[1], 'expires_at', 'token_hash')
redis.call('DEL', KEYS[1], KEYS[2])  -- SES-16: the cursors go with it
return old
"""

ADVANCE_CURSOR = """
-- ARGV[1] channel, [2] epoch, [3] offset, [4] grace after expiry (ms), [5] fallback expiry
local value = redis.call('HGET', KEYS[2], ARGV[1])
if value then
  local offset, epoch = string.match(value, '^(%d+):(.+)$')
  if epoch == ARGV[2] and tonumber(offset) >= tonumber(ARGV[3]) then
    return {epoch, tonumber(offset)}  -- ACK-4: an ack below the cursor leaves it unchanged
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ':' .. ARGV[2])  -- ACK-7: other epochs replaced
local expires = redis.call('HGET', KEYS[1], 'expires_at')
local at = ARGV[5]
if expires then at = string.format('%d', tonumber(expires) + tonumber(ARGV[4])) end
redis.call('PEXPIREAT', KEYS[2], at)
return {ARGV[2], tonumber(ARGV[3])}
"""
