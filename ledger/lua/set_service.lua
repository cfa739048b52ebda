-- Enable or disable one service.
-- KEYS: sub, journal
-- ARGV: base entry JSON, service id, 'enable' | 'disable'
local sub_key, journal_key = KEYS[1], KEYS[2]
local service, mode = ARGV[2], ARGV[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end

local raw = redis.call('HGET', sub_key, 'services') or '[]'
local list = cjson.decode(raw)
local present = false
for _, s in ipairs(list) do
  if s == service then present = true end
end

if mode == 'enable' then
  if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
  if present then return answer('already_enabled') end
  table.insert(list, service)
else
  if not present then return answer('not_enabled') end
  local kept = {}
  for _, s in ipairs(list) do
    if s ~= service then table.insert(kept, s) end
  end
  list = kept
end
table.sort(list)
-- cjson would write an empty table as {}; the stored form is always a JSON list.
local encoded = '[]'
if #list > 0 then encoded = cjson.encode(list) end
redis.call('HSET', sub_key, 'services', encoded)
local op = 'service_disabled'
if mode == 'enable' then op = 'service_enabled' end
journal(journal_key, ARGV[1], op, {services = cjson.decode(raw)}, {services = list},
  {service = service})
return answer('ok', {service = service})
