#!lua
--[[
feast-lua registry_put: replace a project's registry document, compare-and-set on its version.

KEYS    [1] the project's registry hash (docs/PROTOCOL.md, "Registry")
ARGV    [1] the version the caller read (0 when the project had no registry yet)
        [2] the new document: JSON whose "version" is ARGV[1] + 1
Reply   the new version (integer)
Errors  CONFLICT <current>   the registry moved on since the caller read it; re-read and retry
        BADREQUEST <why>     wrong arity, a bad version, or a document that is not a registry
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

if #KEYS ~= 1 or #ARGV ~= 2 then return bad_request('expected 1 KEYS and 2 ARGV') end
local expected = argv_count(1)
if not expected then return bad_request('ARGV[1] (expected version) must be an integer >= 0') end
local ok, doc = pcall(cjson.decode, ARGV[2])
if not ok or type(doc) ~= 'table' or doc.format ~= 1 or doc.version ~= expected + 1 then
  return bad_request('ARGV[2] must be a format 1 registry document with version ' .. (expected + 1))
end
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= expected then return redis.error_reply('CONFLICT ' .. current) end
redis.call('HSET', KEYS[1], 'version', expected + 1, 'doc', ARGV[2])
return expected + 1
