-- Helpers shared by every ledger script (prepended by ledger/service.py before loading).
-- Every script answers one JSON document: {"outcome": ..., "values": {...}}.

local function answer(outcome, values)
  return cjson.encode({outcome = outcome, values = values or {}})
end

local function hash_to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- Hash fields are strings; the journal shows them with their real JSON types.
local NUMERIC_FIELDS = {balance_kop = true, bonus_points = true, created_at = true}
local JSON_FIELDS = {services = true, group = true}

local function typed(field, value)
  if value == nil or value == false then return cjson.null end
  if NUMERIC_FIELDS[field] then return tonumber(value) end
  if JSON_FIELDS[field] then return cjson.decode(value) end
  return value
end

-- base_json carries id, at, ts, actor and msisdn, made by the caller; the script adds what only
-- it can know atomically: the values before and after the change.
local function journal(key, base_json, op, before, after, extra)
  local entry = cjson.decode(base_json)
  entry.op = op
  entry.before = before
  entry.after = after
  if extra then
    for k, v in pairs(extra) do entry[k] = v end
  end
  redis.call('RPUSH', key, cjson.encode(entry))
end

-- cjson would write an empty table as {}; a stored list is always a JSON list.
local function encode_list(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

-- The subscriber's service ids (a JSON list in the `services` field of its hash).
local function services_of(sub_key)
  local list = cjson.decode(redis.call('HGET', sub_key, 'services') or '[]')
  if type(list) ~= 'table' then return {} end
  return list
end

local function has_item(list, item)
  for _, value in ipairs(list) do
    if value == item then return true end
  end
  return false
end

-- A sorted copy of `list` with `item` present (wanted = true) or absent (wanted = false).
local function with_item(list, item, wanted)
  local out = {}
  for _, value in ipairs(list) do
    if value ~= item then table.insert(out, value) end
  end
  if wanted then table.insert(out, item) end
  table.sort(out)
  return out
end

