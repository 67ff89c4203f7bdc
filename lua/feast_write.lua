#!lua
--[[
feast-lua feast_write: store many rows of one feature view in Feast's layout, atomically,
newest-wins, so Feast's own reader (and feast_read) serve them.

KEYS    N entity hash keys in Feast's encoding, KEYS[i] for row i (a key may repeat; rows apply
        in order)
ARGV    [1]        the view's timestamp field "_ts:<view>"
        [2]        key TTL in seconds (Feast's key_ttl_seconds); 0 leaves each key's TTL as it is
        [3]        F, features per row (1..1999)
        [4 .. 3+F] the F feature fields (4 bytes each: murmur3 of "view:feature")
        then N groups of 1+F: row i's Timestamp proto, then its F Value protos ("" for null),
                   row i's group starting at ARGV[4 + F + (i-1)*(1+F)]
Reply   array of 2 integers: {rows written, rows skipped as not newer}
        A row is written (one HSET of its timestamp and every feature field, then EXPIRE when
        ARGV[2] > 0) when no valid timestamp is stored in the key's "_ts:<view>" field, or when its
        timestamp is later than the stored one. An equal or older row is skipped, as Feast skips it,
        so a replay changes nothing.
Errors  BADREQUEST <why>     the counts do not match, a field is not 4 bytes, or a TTL that is not
                             an integer in 0..2^53; nothing was written
        BADROW <i>           row i's timestamp is not a valid Timestamp; nothing was written
        WRONGTYPE ...        a key holds another type than a hash; nothing was written
        Value protos are stored as they come: writers must send well-formed ones.
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

local N = #KEYS
local ts_field = ARGV[1]
local ttl = argv_count(2)
local F = argv_count(3)
if ts_field == nil then return bad_request('ARGV[1] (timestamp field) is missing') end
if not ttl then return bad_request('ARGV[2] (key TTL s) must be an integer >= 0') end
if not F or F < 1 or F >= 2000 then
  return bad_request('ARGV[3] (features) must be an integer in 1..1999')
end
if #ARGV ~= 3 + F + N * (1 + F) then
  return bad_request('expected ' .. (3 + F + N * (1 + F)) .. ' ARGV for ' .. N .. ' KEYS and ' .. F .. ' features, got ' .. #ARGV)
end
for f = 1, F do
  if #ARGV[3 + f] ~= 4 then return bad_request('ARGV[' .. (3 + f) .. '] (feature field) must be 4 bytes') end
end

-- Everything is checked, and every key's stored timestamp read, before the first write.
local seconds, nanos, stored = {}, {}, {}
for i = 1, N do
  local s, ns = proto_timestamp(ARGV[4 + F + (i - 1) * (1 + F)])
  if not s then return redis.error_reply('BADROW ' .. i) end
  seconds[i], nanos[i] = s, ns
  local key = KEYS[i]
  if stored[key] == nil then
    local current = redis.pcall('HGET', key, ts_field)
    if type(current) == 'table' and current.err then return current end
    stored[key] = false
    if current then
      local cs, cn = proto_timestamp(current)
      -- A malformed stored timestamp can only be repaired by overwriting it.
      if cs then stored[key] = { cs, cn } end
    end
  end
end

local written, skipped = 0, 0
local fields = {}
for f = 1, F do fields[f] = ARGV[3 + f] end
for i = 1, N do
  local key = KEYS[i]
  local current = stored[key]
  local s, ns = seconds[i], nanos[i]
  if not current or s > current[1] or (s == current[1] and ns > current[2]) then
    local base = 4 + F + (i - 1) * (1 + F)
    local args = { ts_field, ARGV[base] }
    for f = 1, F do
      args[2 * f + 1] = fields[f]
      args[2 * f + 2] = ARGV[base + f]
    end
    redis.call('HSET', key, unpack(args))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    stored[key] = { s, ns }
    written = written + 1
  else
    skipped = skipped + 1
  end
end
return { written, skipped }
