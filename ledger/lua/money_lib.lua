-- Helpers shared by the money_, group_, block_ and promised_ scripts (loaded after _prelude.lua).

local function balance_of(sub_key)
  return tonumber(redis.call('HGET', sub_key, 'balance_kop'))
end

-- The subscriber's `group` field as a table, or nil when the number is in no group.
local function group_of(sub_key)
  local raw = redis.call('HGET', sub_key, 'group')
  if not raw or raw == 'null' or raw == '' then return nil end
  local group = cjson.decode(raw)
  if type(group) ~= 'table' or next(group) == nil then return nil end
  return group
end

local function group_json(group)
  if group == nil then return cjson.null end
  return group
end

local function set_group(sub_key, group)
  if group == nil then
    redis.call('HSET', sub_key, 'group', 'null')
  else
    redis.call('HSET', sub_key, 'group', cjson.encode(group))
  end
end

-- A second journal entry of the same change needs its own id.
local function with_suffix(base_json, suffix)
  return {id = cjson.decode(base_json).id .. suffix}
end

local function merged(a, b)
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do out[k] = v end
  return out
end
