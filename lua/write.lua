#!lua
--[[
feast-lua write: store many rows of one feature table atomically, newest-wins.

KEYS    N entity hash keys, KEYS[i] for row i (a key may repeat; rows apply in order)
ARGV    [1]        the table's field name inside each hash
        [2]        key TTL in milliseconds; 0 leaves each key's TTL as it is
        [3 .. 2+N] N packed rows, ARGV[2+i] for KEYS[i] (docs/PROTOCOL.md, "Packed row")
Reply   array of 2 integers: {rows written, rows skipped as not newer}
        A row is written when its event timestamp is later than the stored row's, or equal with a
        later created timestamp. Otherwise the stored row stays, so a replay changes nothing.
        A written row refreshes its key's TTL when ARGV[2] > 0.
Errors  BADREQUEST <why>     #ARGV ~= 2 + #KEYS, or a TTL that is not an integer in 0..2^53
        BADROW <i>           packed row i is malformed; nothing was written
        WRONGTYPE ...        a key holds another type than a hash; nothing was written
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

local N = #KEYS
if #ARGV ~= 2 + N then return bad_request('expected ' .. (2 + N) .. ' ARGV for ' .. N .. ' KEYS, got ' .. #ARGV) end
local field = ARGV[1]
local ttl = argv_count(2)
if not ttl then return bad_request('ARGV[2] (key TTL ms) must be an integer >= 0') end

local plan, err = check_rows(KEYS, 0, ARGV, 2, N, field)
if not plan then return err end
local written, skipped = apply_rows(plan, KEYS, 0, ARGV, 2, N, field, ttl, nil)
return { written, skipped }
