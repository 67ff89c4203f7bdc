#!lua flags=no-writes
--[[
feast-lua read: the feature values, statuses and event timestamps of many entity rows, atomically.

KEYS    N*G entity hash keys, row-major: KEYS[(r-1)*G + g] is entity row r's key in key group g.
        A key group is one set of join keys; tables over the same entities share a group.
ARGV    [1]        G, key groups per row (>= 1)
        [2]        T, feature tables in the request (1..1000)
        [3 .. 2+3T] T triples: table field name, key group g (1..G), max age in us (0 = no limit)
        [3+3T]     F, feature refs in the request (>= 1)
        [4+3T ..]  F pairs: table index t (1..T), slot (0-based position in the packed row)
Reply   one msgpack array of 4, cells row-major (row r, ref f at (r-1)*F + f):
        [1] now_us      int: the server clock (TIME) the statuses were computed against
        [2] statuses    bin of N*F bytes, one FieldStatus number per cell:
                        3 NOT_FOUND, then 4 OUTSIDE_MAX_AGE, then 2 NULL_VALUE, else 1 PRESENT
        [3] event_ts    bin of N*T big-endian i64 microseconds, row-major; 0 where no row is stored
        [4] values      array of N*F msgpack values, nil unless the cell is PRESENT
        When the values pass 8388608 bytes, the call stops after that entity row and
        all four parts cover only the first N' < N rows (N' = #statuses / F): send the KEYS of
        the other rows again, in another call.
Errors  BADREQUEST <why>     ARGV malformed (numbers are plain decimal digits), a key group with
                             no table, or #KEYS not a multiple of G
        BADROW <i>           KEYS[i] holds a packed row that is malformed
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
-- The msgpack bytes of slots a..b (0-based, inclusive, b < n) of a packed row with n slots whose
-- values start at 0-based position vstart, or nil when its end offsets point outside the row.
local OFFSET_FMT = { [2] = '>I2', [4] = '>I4' }
local function slot_range(row, a, b, n, vstart)
  local w = (vstart - 19) / n - 1
  local offsets = 19 + n + 1
  local first, last = 0, #row - vstart
  if b < n - 1 then last = struct.unpack(OFFSET_FMT[w], row, offsets + b * w) end
  if a > 0 then first = struct.unpack(OFFSET_FMT[w], row, offsets + (a - 1) * w) end
  if last < first or vstart + last > #row then return nil end
  return string.sub(row, vstart + first + 1, vstart + last)
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
local T = argv_count(2)
if not G or G < 1 then return bad_request('ARGV[1] (key groups) must be an integer >= 1') end
if not T or T < 1 or T > 1000 then
  return bad_request('ARGV[2] (tables) must be an integer in 1..1000')
end
-- Every key group has a table, so G <= T; checked before anything is allocated per group.
if G > T then return bad_request('ARGV[1] (key groups) must be an integer in 1..' .. T) end
local F = argv_count(3 + 3 * T)
if not F or F < 1 then return bad_request('ARGV[' .. (3 + 3 * T) .. '] (refs) must be an integer >= 1') end
if #ARGV ~= 3 + 3 * T + 2 * F then
  return bad_request('expected ' .. (3 + 3 * T + 2 * F) .. ' ARGV for ' .. T .. ' tables and ' .. F .. ' refs, got ' .. #ARGV)
end
if #KEYS % G ~= 0 then return bad_request(#KEYS .. ' KEYS is not a multiple of ' .. G .. ' key groups') end

-- Per table: its field, its key group, its max age. Per key group: the fields to HMGET.
local field, max_age, group_of, group_fields, group_tables = {}, {}, {}, {}, {}
for g = 1, G do group_fields[g] = {}; group_tables[g] = {} end
for t = 1, T do
  local base = 2 + 3 * (t - 1)
  local g, age = argv_count(base + 2), argv_count(base + 3)
  if not g or g < 1 or g > G then return bad_request('table ' .. t .. ': key group must be in 1..' .. G) end
  if not age then return bad_request('table ' .. t .. ': max age must be an integer >= 0') end
  field[t], max_age[t], group_of[t] = ARGV[base + 1], age, g
  table.insert(group_fields[g], field[t])
  table.insert(group_tables[g], t)
end
for g = 1, G do
  if #group_tables[g] == 0 then return bad_request('key group ' .. g .. ' has no table') end
end
local ref_table, ref_slot = {}, {}
for f = 1, F do
  local base = 3 + 3 * T + 2 * (f - 1)
  local t, slot = argv_count(base + 1), argv_count(base + 2)
  if not t or t < 1 or t > T then return bad_request('ref ' .. f .. ': table index must be in 1..' .. T) end
  if not slot then return bad_request('ref ' .. f .. ': slot must be an integer >= 0') end
  ref_table[f], ref_slot[f] = t, slot
end

-- Consecutive refs of one table with consecutive slots form a segment: per row, a fresh stored
-- row yields a segment's statuses and values as two slices, however many refs it spans.
local seg_table, seg_first, seg_last = {}, {}, {}
local S = 0
for f = 1, F do
  local t, slot = ref_table[f], ref_slot[f]
  if S > 0 and seg_table[S] == t and seg_last[S] + 1 == slot then
    seg_last[S] = slot
  else
    S = S + 1
    seg_table[S], seg_first[S], seg_last[S] = t, slot, slot
  end
end
local NOT_FOUND = string.char(3)
local OUTSIDE_MAX_AGE = string.char(4)
local NIL = string.char(192)
local NO_TS = string.rep('\0', 8)
local seg_missing, seg_stale, seg_nils = {}, {}, {}
for i = 1, S do
  local len = seg_last[i] - seg_first[i] + 1
  seg_missing[i] = string.rep(NOT_FOUND, len)
  seg_stale[i] = string.rep(OUTSIDE_MAX_AGE, len)
  seg_nils[i] = string.rep(NIL, len)
end

local now = now_us()
local N = #KEYS / G
local sub, call = string.sub, redis.call
local STATUS_AT = 19 + 1

-- The current entity row's stored row per table (false when none), its slot count, and where
-- its values start, negated when the row is stale: three table writes per row, not five.
local row, nslots, vstart = {}, {}, {}
local function load(t, packed)
  if not packed then
    row[t] = false
    return true
  end
  local ev, _, n, _, vs = row_header(packed)
  if not ev then return false end
  local age = max_age[t]
  row[t], nslots[t] = packed, n
  if age == 0 or now - ev <= age then vstart[t] = vs else vstart[t] = -vs end
  return true
end

-- A key group with one table is read with HGET, which needs no reply table.
local single_field, single_table = {}, {}
for g = 1, G do
  if #group_fields[g] == 1 then single_field[g], single_table[g] = group_fields[g][1], group_tables[g][1] end
end

-- statuses[i] and values[i] are always appended together, so one counter serves both.
local statuses, stamps, values = {}, {}, {}
local nc, nt, key_index = 0, 0, 0
local served, value_bytes = N, 0
for r = 1, N do
  for g = 1, G do
    key_index = key_index + 1
    local field = single_field[g]
    if field then
      if not load(single_table[g], call('HGET', KEYS[key_index], field)) then
        return redis.error_reply('BADROW ' .. key_index)
      end
    else
      local got = call('HMGET', KEYS[key_index], unpack(group_fields[g]))
      local tables = group_tables[g]
      for i = 1, #tables do
        if not load(tables[i], got[i]) then return redis.error_reply('BADROW ' .. key_index) end
      end
    end
  end
  for t = 1, T do
    local packed = row[t]
    nt = nt + 1
    stamps[nt] = packed and sub(packed, 2, 9) or NO_TS
  end
  for i = 1, S do
    local t, a, b = seg_table[i], seg_first[i], seg_last[i]
    local packed = row[t]
    nc = nc + 1
    if not packed then
      statuses[nc], values[nc] = seg_missing[i], seg_nils[i]
    else
      local n, vs = nslots[t], vstart[t]
      if b < n then
        if vs < 0 then
          statuses[nc], values[nc] = seg_stale[i], seg_nils[i]
        else
          statuses[nc] = sub(packed, STATUS_AT + a, STATUS_AT + b)
          local v
          if a == 0 and b == n - 1 then v = sub(packed, vs + 1) else v = slot_range(packed, a, b, n, vs) end
          if not v then return redis.error_reply('BADROW ' .. ((r - 1) * G + group_of[t])) end
          values[nc] = v
          value_bytes = value_bytes + #v
        end
      else
        -- The row predates some of these features: slot by slot, the newer ones NOT_FOUND.
        nc = nc - 1
        for slot = a, b do
          nc = nc + 1
          if slot >= n then
            statuses[nc], values[nc] = NOT_FOUND, NIL
          elseif vs < 0 then
            statuses[nc], values[nc] = OUTSIDE_MAX_AGE, NIL
          else
            statuses[nc] = sub(packed, STATUS_AT + slot, STATUS_AT + slot)
            values[nc] = slot_range(packed, slot, slot, n, vs)
            if not values[nc] then return redis.error_reply('BADROW ' .. ((r - 1) * G + group_of[t])) end
          end
        end
      end
    end
  end
  -- Big values: answer for the rows so far; the caller asks again for the rest.
  if value_bytes >= 8388608 and r < N then
    served = r
    break
  end
end

local status_bytes = table.concat(statuses)
local stamp_bytes = table.concat(stamps)
return string.char(0x94) .. mp_int64(now)
  .. mp_bin_header(#status_bytes) .. status_bytes
  .. mp_bin_header(#stamp_bytes) .. stamp_bytes
  .. mp_array_header(served * F) .. table.concat(values)
