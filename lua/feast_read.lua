#!lua flags=no-writes
--[[
feast-lua feast_read: features that Feast's RedisOnlineStore wrote, with their statuses, atomically.

Layout (Feast's): one hash per entity key; one field per feature, named by the 4-byte murmur3
hash of "view:feature", holding a feast Value proto ("" for null); one field "_ts:<view>" per
view holding a google.protobuf.Timestamp.
KEYS    N*G entity hash keys in Feast's encoding, row-major: KEYS[(r-1)*G + g] is entity row r's
        key in key group g. A key group is one set of join keys; views over the same entities
        share a group.
ARGV    [1]        G, key groups per row (>= 1)
        [2]        V, feature views in the request (1..1000)
        [3 .. 2+3V] V triples: the view's timestamp field "_ts:<view>", key group g (1..G),
                   ttl in us (0 = no limit)
        [3+3V]     F, feature refs in the request (>= 1)
        [4+3V ..]  F pairs: view index v (1..V), the feature's field (the murmur3 bytes)
        Per key group at most 2000 fields (its views' timestamp fields and its refs' fields).
Reply   one msgpack array of 4, cells row-major (row r, ref f at (r-1)*F + f):
        [1] now_us      int: the server clock (TIME) the statuses were computed against
        [2] statuses    bin of N*F bytes, one FieldStatus number per cell:
                        3 NOT_FOUND (no key, no timestamp field, or no feature field),
                        then 4 OUTSIDE_MAX_AGE (ttl > 0 and now - event > ttl),
                        then 2 NULL_VALUE (an empty Value, one holding only null_val, or
                        the unix_timestamp_val -2^63 Feast writes for NaT), else 1 PRESENT
        [3] event_ts    bin of N*V big-endian i64 microseconds, row-major; 0 where no timestamp is stored
        [4] values      array of N*F: the stored Value proto bytes as a bin, nil unless PRESENT
        When the values pass 8388608 bytes, the call stops after that entity row and
        all four parts cover only the first N' < N rows (N' = #statuses / F): send the KEYS of
        the other rows again, in another call.
Errors  BADREQUEST <why>     ARGV malformed (numbers are plain decimal digits), a key group with
                             no view or too many fields, or #KEYS not a multiple of G
        BADROW <i>           KEYS[i] holds a timestamp field that is not a valid Timestamp
]]
-- The server clock in microseconds since the epoch; exact in a Lua double until the year 2255.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
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
-- Parses a serialized google.protobuf.Timestamp, as Feast stores it in "_ts:<view>": field 1
-- seconds (int64 varint), field 2 nanos (int32 varint), each left out when 0, so "" is the epoch.
-- Returns seconds, nanos, or nil when the bytes are anything else, nanos are outside
-- 0..999999999, or seconds are beyond +-2^53 (where a Lua double stops being exact).
local function proto_timestamp(s)
  local seconds, nanos = 0, 0
  local pos, len, byte = 1, #s, string.byte
  while pos <= len do
    local tag = byte(s, pos)
    if tag ~= 8 and tag ~= 16 then return nil end
    pos = pos + 1
    -- v sums the 7-bit groups; c sums their complements, which a negative int64 needs: it takes
    -- ten bytes of two's complement over 64 bits, the tenth holding only the sign bit. Both sums
    -- are exact while they stay within 2^53; beyond that the value is refused anyway.
    local v, c, scale, n, b = 0, 0, 1, 0, 128
    while b >= 128 do
      if pos > len or n == 10 then return nil end
      b = byte(s, pos)
      pos, n = pos + 1, n + 1
      local group = b % 128
      if n < 10 then
        v, c = v + group * scale, c + (127 - group) * scale
        scale = scale * 128
      elseif group ~= 1 then
        return nil
      end
    end
    if n == 10 then v = -(c + 1) end
    if v > 9007199254740992 or v < -9007199254740992 then return nil end
    if tag == 8 then seconds = v else nanos = v end
  end
  if nanos < 0 or nanos > 999999999 then return nil end
  return seconds, nanos
end
-- msgpack framing for replies spliced together from stored msgpack bytes.
local function mp_array_header(n)
  if n < 16 then return string.char(0x90 + n) end
  if n < 65536 then return struct.pack('>BI2', 0xdc, n) end
  return struct.pack('>BI4', 0xdd, n)
end
local function mp_bin_header(n)
  if n < 256 then return struct.pack('>BB', 0xc4, n) end
  if n < 65536 then return struct.pack('>BI2', 0xc5, n) end
  return struct.pack('>BI4', 0xc6, n)
end
local function mp_int64(n)
  return struct.pack('>Bi8', 0xd3, n)
end

local G = argv_count(1)
local V = argv_count(2)
if not G or G < 1 then return bad_request('ARGV[1] (key groups) must be an integer >= 1') end
if not V or V < 1 or V > 1000 then
  return bad_request('ARGV[2] (views) must be an integer in 1..1000')
end
-- Every key group has a table, so G <= V; checked before anything is allocated per group.
if G > V then return bad_request('ARGV[1] (key groups) must be an integer in 1..' .. V) end
local F = argv_count(3 + 3 * V)
if not F or F < 1 then return bad_request('ARGV[' .. (3 + 3 * V) .. '] (refs) must be an integer >= 1') end
if #ARGV ~= 3 + 3 * V + 2 * F then
  return bad_request('expected ' .. (3 + 3 * V + 2 * F) .. ' ARGV for ' .. V .. ' views and ' .. F .. ' refs, got ' .. #ARGV)
end
if #KEYS % G ~= 0 then return bad_request(#KEYS .. ' KEYS is not a multiple of ' .. G .. ' key groups') end

-- Per key group: the fields to HMGET. Per view: its group, ttl and where its timestamp lands in
-- the group's reply. Per ref: its view and where its value lands.
local group_fields, group_views = {}, {}
for g = 1, G do group_fields[g] = {}; group_views[g] = {} end
local view_group, ttl, ts_at = {}, {}, {}
for v = 1, V do
  local base = 2 + 3 * (v - 1)
  local g, age = argv_count(base + 2), argv_count(base + 3)
  if not g or g < 1 or g > G then return bad_request('view ' .. v .. ': key group must be in 1..' .. G) end
  if not age then return bad_request('view ' .. v .. ': ttl must be an integer >= 0') end
  view_group[v], ttl[v] = g, age
  table.insert(group_fields[g], ARGV[base + 1])
  table.insert(group_views[g], v)
  ts_at[v] = #group_fields[g]
end
for g = 1, G do
  if #group_views[g] == 0 then return bad_request('key group ' .. g .. ' has no view') end
end
local ref_view, ref_at = {}, {}
for f = 1, F do
  local base = 3 + 3 * V + 2 * (f - 1)
  local v = argv_count(base + 1)
  if not v or v < 1 or v > V then return bad_request('ref ' .. f .. ': view index must be in 1..' .. V) end
  local g = view_group[v]
  table.insert(group_fields[g], ARGV[base + 2])
  ref_view[f], ref_at[f] = v, #group_fields[g]
end
for g = 1, G do
  if #group_fields[g] > 2000 then
    return bad_request('key group ' .. g .. ' has ' .. #group_fields[g] .. ' fields, more than 2000')
  end
end

local NOT_FOUND = string.char(3)
local OUTSIDE_MAX_AGE = string.char(4)
local NULL_VALUE = string.char(2)
local PRESENT = string.char(1)
local NULL_VAL = string.char(152, 1, 0)
local NULL_TIMESTAMP = string.char(64, 128, 128, 128, 128, 128, 128, 128, 128, 128, 1)
local NIL = string.char(192)
local NO_TS = string.rep('\0', 8)
-- msgpack bin headers of short values, made once: most Value protos are a few bytes.
local BIN = {}
for n = 0, 255 do BIN[n] = string.char(0xc4, n) end

local now = now_us()
local N = #KEYS / G
local call, floor = redis.call, math.floor

-- Per ref, the group whose HMGET reply holds its value.
local ref_group = {}
for f = 1, F do ref_group[f] = view_group[ref_view[f]] end
local FRESH, STALE = 1, 2
local stamp_rows = {}

-- The current entity row: each group's HMGET reply, and per view whether a timestamp is stored
-- and, if so, whether it is stale (state false, FRESH or STALE).
local got, state = {}, {}
local event_of, packed_of = {}, {}
-- values holds a bin header and the bytes as two entries per PRESENT cell, so no cell is
-- concatenated into a new Lua string; table.concat joins everything once.
local statuses, stamps, values = {}, {}, {}
local nc, nv, nt, key_index = 0, 0, 0, 0
local served, value_bytes = N, 0
for r = 1, N do
  for g = 1, G do
    key_index = key_index + 1
    local reply = call('HMGET', KEYS[key_index], unpack(group_fields[g]))
    got[g] = reply
    local views = group_views[g]
    for i = 1, #views do
      local v = views[i]
      local ts = reply[ts_at[v]]
      nt = nt + 1
      if ts then
        -- Rows written together share their timestamp bytes: each distinct one is parsed once.
        local event = event_of[ts]
        if not event then
          local seconds, nanos = proto_timestamp(ts)
          if not seconds then return redis.error_reply('BADROW ' .. key_index) end
          event = seconds * 1000000 + floor(nanos / 1000)
          event_of[ts], packed_of[ts] = event, struct.pack('>i8', event)
        end
        if ttl[v] > 0 and now - event > ttl[v] then state[v] = STALE else state[v] = FRESH end
        stamps[v] = packed_of[ts]
      else
        state[v] = false
        stamps[v] = NO_TS
      end
    end
  end
  stamp_rows[r] = table.concat(stamps, '', 1, V)
  for f = 1, F do
    local st = state[ref_view[f]]
    nc, nv = nc + 1, nv + 1
    if st == FRESH then
      local value = got[ref_group[f]][ref_at[f]]
      if not value then
        statuses[nc], values[nv] = NOT_FOUND, NIL
      else
        local n = #value
        if n == 0 or (n == 3 and value == NULL_VAL) or (n == 11 and value == NULL_TIMESTAMP) then
          statuses[nc], values[nv] = NULL_VALUE, NIL
        else
          statuses[nc], values[nv], values[nv + 1] = PRESENT, BIN[n] or mp_bin_header(n), value
          nv = nv + 1
          value_bytes = value_bytes + n
        end
      end
    elseif st == STALE and got[ref_group[f]][ref_at[f]] then
      statuses[nc], values[nv] = OUTSIDE_MAX_AGE, NIL
    else
      statuses[nc], values[nv] = NOT_FOUND, NIL
    end
  end
  -- Big values: answer for the rows so far; the caller asks again for the rest.
  if value_bytes >= 8388608 and r < N then
    served = r
    break
  end
end

local status_bytes = table.concat(statuses)
local stamp_bytes = table.concat(stamp_rows, '', 1, served)
return string.char(0x94) .. mp_int64(now)
  .. mp_bin_header(#status_bytes) .. status_bytes
  .. mp_bin_header(#stamp_bytes) .. stamp_bytes
  .. mp_array_header(served * F) .. table.concat(values, '', 1, nv)
