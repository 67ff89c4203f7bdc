#!lua
--[[
feast-lua stream_write: apply stream events (rows of one feature table) newest-wins and XACK them
in the same atomic call, so an event is applied exactly once even when a worker dies mid-batch.

KEYS    [1]          the stream key
        [1+i]        i = 1..N: the entity hash key of event i's row (a key may repeat)
ARGV    [1]          the consumer group
        [2]          the table's field name inside each hash
        [3]          key TTL in milliseconds; 0 leaves each key's TTL as it is
        [4]          N, the number of events (ids, and rows)
        [4+i]        i = 1..N: event i's stream entry id ("<ms>-<seq>")
        [4+N+i]      i = 1..N: event i's packed row (docs/PROTOCOL.md, "Packed row")
Reply   array of 4 integers: {rows written, rows skipped as not newer, events acked,
        events not pending}
        An event is applied only while its id is pending in the group (delivered, not acked):
        its row is written newest-wins exactly as the write script does, and its id is XACKed.
        An event that is not pending (acked already by another worker, or never delivered) is
        left alone and counted as not pending; so is a second copy of an id in the same call.
Errors  BADREQUEST <why>     wrong arity, N or TTL not an integer, or an id that is not <ms>-<seq>
                             in decimal without leading zeros
        BADROW <i>           packed row i (1-based) is malformed; nothing written or acked
        WRONGTYPE ...        an entity key is not a hash, or the stream key not a stream;
                             nothing written or acked
        NOGROUP ...          no such stream or consumer group; nothing written or acked
]]
local function bad_request(why)
  return redis.error_reply('BADREQUEST ' .. why)
end
-- A non-negative integer from ARGV in plain decimal digits, at most 2^53 so that a Lua double
-- holds it exactly, or nil. "1e3", "0x10", " 7" and "inf" are refused, not guessed at.
local function argv_count(i)
  local s = ARGV[i]
  if s == nil or #s > 16 or not string.find(s, '^%d+$') then return nil end
  local n = tonumber(s)
  if n > 9007199254740992 then return nil end
  return n
end
-- Parses a packed row's header (docs/PROTOCOL.md, "Packed row"). Returns event_ts_us,
-- created_ts_us, the slot count, the end offset width and the 0-based position where the values
-- start, or nil when the header is malformed.
local function row_header(row)
  if #row < 19 then return nil end
  local fmt, ev, cr, n = struct.unpack('>Bi8i8I2', row)
  local w
  if fmt == 1 then w = 2 elseif fmt == 2 then w = 4 else return nil end
  local vstart = 19 + n * (w + 1)
  if #row < vstart then return nil end
  return ev, cr, n, w, vstart
end
-- Newest-wins writes of packed rows of one table (docs/PROTOCOL.md, "Write script"), shared by
-- write and stream_write. Row i (1..n) is rows[rbase + i], stored in keys[kbase + i], field `field`.
local ROW_OFFSET_FMT = { [2] = '>I2', [4] = '>I4' }

-- Checks what a packed row's statuses and end offsets say on their own (row_shape), then what
-- they say about the values (row_body_ok). Rows of one call mostly share their statuses and end
-- offsets (the "shape": same nulls, same value lengths), so row_shape runs once per distinct
-- shape and the per-row work is one string.sub, one table lookup and one string.byte per 1-byte
-- value.
--
-- row_shape: whether each status byte is PRESENT or NULL_VALUE, each NULL_VALUE value is 1 byte
-- long and the end offsets rise strictly. Returns false if not, else {total = the last end
-- offset, e1, nil1, e2, nil2, ...}: for each 1-byte value, its end offset and whether its status
-- says it is the nil byte. Up to ROW_SLOTS_AT_ONCE slots, statuses and offsets are read with one
-- call each; the C stack holds one value per slot, so wider rows are read slot by slot.
local ROW_SLOTS_AT_ONCE = 200
local ENDS_FMT = {}  -- slots * 4 + width -> '>I2I2...'
local function row_shape(row, slots, w)
  local PRESENT, NULL_VALUE = 1, 2
  local first = 19 + 1
  local status, ends
  if slots <= ROW_SLOTS_AT_ONCE then
    local fmt = ENDS_FMT[slots * 4 + w]
    if not fmt then
      fmt = '>' .. string.rep(w == 2 and 'I2' or 'I4', slots)
      ENDS_FMT[slots * 4 + w] = fmt
    end
    status = { string.byte(row, first, first + slots - 1) }
    ends = { struct.unpack(fmt, row, first + slots) }
  else
    status, ends = {}, {}
    local fmt = ROW_OFFSET_FMT[w]
    for s = 1, slots do
      status[s] = string.byte(row, first + s - 1)
      ends[s] = struct.unpack(fmt, row, first + slots + (s - 1) * w)
    end
  end
  local ones, prev = {}, 0
  for s = 1, slots do
    local e, st = ends[s], status[s]
    if e <= prev or (st ~= PRESENT and st ~= NULL_VALUE) then return false end
    if e - prev == 1 then
      ones[#ones + 1] = e
      ones[#ones + 1] = st == NULL_VALUE
    elseif st == NULL_VALUE then
      return false
    end
    prev = e
  end
  ones.total = prev
  return ones
end

-- Whether a packed row's body agrees with its header: each slot's status byte is PRESENT or
-- NULL_VALUE and agrees with its value (NULL_VALUE exactly when the value is the nil byte), and
-- the end offsets rise to exactly the end of the row. `shapes` caches row_shape for one call,
-- per offset width, by the bytes of the slot count, statuses and end offsets.
local function row_body_ok(row, slots, w, vstart, shapes)
  local NIL, byte = 192, string.byte
  local cache = shapes[w]
  local key = string.sub(row, 19 - 1, vstart)
  local ones = cache[key]
  if ones == nil then
    ones = row_shape(row, slots, w)
    cache[key] = ones
  end
  if not ones or vstart + ones.total ~= #row then return false end
  for j = 1, #ones, 2 do
    if (byte(row, vstart + ones[j]) == NIL) ~= ones[j + 1] then return false end
  end
  return true
end

-- Validates every row (row_body_ok) before anything is written. Reads each key's stored row with
-- redis.pcall, so a key of another type (WRONGTYPE) fails here, before any write. Returns
-- {event, created, stored}, or nil and the error reply (BADROW <i>, or Redis' error).
local function check_rows(keys, kbase, rows, rbase, n, field)
  local event, created = {}, {}
  local stored = {}  -- key -> the row stored under the field, or false
  local shapes = { [2] = {}, [4] = {} }
  for i = 1, n do
    local row = rows[rbase + i]
    local ev, cr, slots, w, vstart = row_header(row)
    if not ev or not row_body_ok(row, slots, w, vstart, shapes) then
      return nil, redis.error_reply('BADROW ' .. i)
    end
    event[i], created[i] = ev, cr
    local key = keys[kbase + i]
    if stored[key] == nil then
      local current = redis.pcall('HGET', key, field)
      if type(current) == 'table' and current.err then return nil, current end
      stored[key] = current
    end
  end
  return { event = event, created = created, stored = stored }
end

-- Applies checked rows in order (`plan` from check_rows); `plan.stored` follows the writes, so
-- rows for the same key see each other. A row is written when its event timestamp is later than
-- the stored row's, or equal with a later created timestamp; a written row refreshes its key's
-- TTL when ttl > 0. Rows i with skip[i] are left out (skip may be nil). Returns written, skipped.
local function apply_rows(plan, keys, kbase, rows, rbase, n, field, ttl, skip)
  local written, skipped = 0, 0
  local stored = plan.stored
  for i = 1, n do
    if not (skip and skip[i]) then
      local key = keys[kbase + i]
      local current = stored[key]
      local newer = true
      if current then
        local ev, cr = row_header(current)
        -- A malformed stored row can only be repaired by overwriting it.
        if ev then newer = plan.event[i] > ev or (plan.event[i] == ev and plan.created[i] > cr) end
      end
      if newer then
        local row = rows[rbase + i]
        redis.call('HSET', key, field, row)
        if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
        stored[key] = row
        written = written + 1
      else
        skipped = skipped + 1
      end
    end
  end
  return written, skipped
end

local N = argv_count(4)
if not N or N < 1 then return bad_request('ARGV[4] (events) must be an integer >= 1') end
if #KEYS ~= 1 + N or #ARGV ~= 4 + 2 * N then
  return bad_request('expected ' .. (1 + N) .. ' KEYS and ' .. (4 + 2 * N) .. ' ARGV for ' .. N ..
                     ' events, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local stream, group, field = KEYS[1], ARGV[1], ARGV[2]
local ttl = argv_count(3)
if not ttl then return bad_request('ARGV[3] (key TTL ms) must be an integer >= 0') end
for i = 1, N do
  local id = ARGV[4 + i]
  -- Canonical ids only (no leading zeros), so two spellings of one id cannot both apply.
  if #id > 41 or not string.find(id, '^%d+%-%d+$') or string.find(id, '^0%d') or string.find(id, '%-0%d') then
    return bad_request('ARGV[' .. (4 + i) .. '] (event id) must be a stream id <ms>-<seq>')
  end
end

-- Validate everything before writing anything: the rows (and the stored rows, read with pcall),
-- then which ids are pending in the group (XPENDING fails on a missing group or a non-stream).
local plan, err = check_rows(KEYS, 1, ARGV, 4 + N, N, field)
if not plan then return err end
local skip, seen, acks = {}, {}, {}
for i = 1, N do
  local id = ARGV[4 + i]
  local pending = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(pending) == 'table' and pending.err then return pending end
  if #pending == 0 or seen[id] then
    skip[i] = true
  else
    seen[id] = true
    acks[#acks + 1] = id
  end
end

local written, skipped = apply_rows(plan, KEYS, 1, ARGV, 4 + N, N, field, ttl, skip)
local acked = 0
for a = 1, #acks, 1000 do
  acked = acked + redis.call('XACK', stream, group, unpack(acks, a, math.min(a + 999, #acks)))
end
return { written, skipped, acked, N - #acks }
