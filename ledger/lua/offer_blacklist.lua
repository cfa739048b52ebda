-- Add a number to the call blacklist or remove it. The `blacklist` service is on exactly while
-- the list has numbers.
-- KEYS: sub, svc, journal
-- ARGV: base entry JSON, 'add' | 'remove', number (E.164), maximum size
local sub_key, svc_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
local mode, number, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
local list = cjson.decode(redis.call('HGET', svc_key, 'blacklist') or '[]')
if type(list) ~= 'table' then list = {} end
local listed = has_item(list, number)
local size_before = #list

if mode == 'add' then
  if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
  if listed then return answer('already_listed', {number = number}) end
  if size_before >= limit then return answer('list_full', {limit = limit}) end
  table.insert(list, number)
else
  if not listed then return answer('not_listed', {number = number}) end
  list = without_item(list, number)
end
table.sort(list)
redis.call('HSET', svc_key, 'blacklist', encode_list(list))
local services_before, services_after = set_service_flag(sub_key, 'blacklist', #list > 0)
local op = 'blacklist_removed'
if mode == 'add' then op = 'blacklist_added' end
journal(journal_key, ARGV[1], op,
  {listed = listed, blacklist_size = size_before, services = services_before},
  {listed = not listed, blacklist_size = #list, services = services_after},
  {number = number})
return answer('ok', {number = number, blacklist_size = #list})
