-- Set or clear unconditional call forwarding (service `call_forwarding`).
-- KEYS: sub, svc, journal
-- ARGV: base entry JSON, 'set' | 'clear', number (E.164; '' to clear)
local sub_key, svc_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
local mode, number = ARGV[2], ARGV[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
local current = redis.call('HGET', svc_key, 'forward_to')

if mode == 'set' then
  if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
  if current == number then return answer('already_enabled', {number = number}) end
  redis.call('HSET', svc_key, 'forward_to', number)
else
  if not current then return answer('not_enabled') end
  redis.call('HDEL', svc_key, 'forward_to')
end
local services_before, services_after = set_service_flag(sub_key, 'call_forwarding',
  mode == 'set')
local after_number = cjson.null
if mode == 'set' then after_number = number end
local op = 'forwarding_cleared'
if mode == 'set' then op = 'forwarding_set' end
journal(journal_key, ARGV[1], op,
  {forward_to = current or cjson.null, services = services_before},
  {forward_to = after_number, services = services_after})
return answer('ok', {forward_to = after_number})
