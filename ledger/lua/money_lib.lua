-- Helpers shared by the money_, group_, block_ and promised_ scripts (loaded after _prelude.lua).

local function balance_of(sub_key)
  return tonumber(redis.call('HGET', sub_key, 'balance_kop'))
end

local function services_of(sub_key)
  local list = cjson.decode(redis.call('HGET', sub_key, 'services') or '[]')
  if type(list) ~= 'table' then return {} end
  return list
end

local function has_service(list, service)
  for _, s in ipairs(list) do
    if s == service then return true end
  end
  return false
end

-- A sorted copy of `list` with `service` present (wanted = true) or absent (wanted = false).
local function with_service(list, service, wanted)
  local out = {}
  for _, s in ipairs(list) do
    if s ~= service then table.insert(out, s) end
  end
  if wanted then table.insert(out, service) end
  table.sort(out)
  return out
end

-- cjson would write an empty table as {}; the stored form is always a JSON list.
local function encode_list(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
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
