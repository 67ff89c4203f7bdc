#!lua
--[[
feast-lua registry_put: replace a project's registry document, compare-and-set on its version.

KEYS    [1] the project's registry hash (docs/PROTOCOL.md, "Registry")
ARGV    [1] the version the caller read (0 when the project had no registry yet)
        [2] the new document: JSON whose "version" is ARGV[1] + 1
Reply   the new version (integer)
Errors  CONFLICT <current>   the registry moved on since the caller read it; re-read and retry
        BADREQUEST <why>     wrong arity, a bad version, or a document that is not a registry of
                             the documented shape
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

-- The document's shape (docs/PROTOCOL.md, "Registry"), so no client is ever handed one it
-- cannot use. Names and numbers are checked for type; the Python client checks the rest.
local VALUE_TYPES = { BYTES = true, STRING = true, INT32 = true, INT64 = true, DOUBLE = true, FLOAT = true, BOOL = true, UNIX_TIMESTAMP = true, BYTES_LIST = true, STRING_LIST = true, INT32_LIST = true, INT64_LIST = true, DOUBLE_LIST = true, FLOAT_LIST = true, BOOL_LIST = true, UNIX_TIMESTAMP_LIST = true }
local function is_count(x) return type(x) == 'number' and x >= 0 and x == math.floor(x) end
local function shape_error()
  if type(doc.project) ~= 'string' or type(doc.entities) ~= 'table' or type(doc.tables) ~= 'table' then
    return 'needs a project string, an entities object and a tables object'
  end
  for name, entity in pairs(doc.entities) do
    if type(name) ~= 'string' or type(entity) ~= 'table' or not VALUE_TYPES[entity.value_type] then
      return 'entity ' .. tostring(name) .. ' needs a known value_type'
    end
  end
  for name, t in pairs(doc.tables) do
    if type(name) ~= 'string' or type(t) ~= 'table' or type(t.entities) ~= 'table' or #t.entities == 0
        or type(t.features) ~= 'table' or #t.features == 0 or not is_count(t.slots) or not is_count(t.max_age_us) then
      return 'table ' .. tostring(name) .. ' needs entities, features, slots and max_age_us'
    end
    for _, e in ipairs(t.entities) do
      if type(e) ~= 'string' or doc.entities[e] == nil then return 'table ' .. name .. ' uses an unknown entity' end
    end
    for _, f in ipairs(t.features) do
      if type(f) ~= 'table' or type(f.name) ~= 'string' or not VALUE_TYPES[f.value_type]
          or not is_count(f.slot) or f.slot >= t.slots then
        return 'table ' .. name .. ' has a feature without a name, a known value_type or a slot below slots'
      end
    end
  end
  return nil
end
local why = shape_error()
if why then return bad_request('ARGV[2] registry document: ' .. why) end
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= expected then return redis.error_reply('CONFLICT ' .. current) end
redis.call('HSET', KEYS[1], 'version', expected + 1, 'doc', ARGV[2])
return expected + 1
