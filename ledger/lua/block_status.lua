-- Voluntary block / unblock and the irreversible permanent block.
-- KEYS: sub, journal
-- ARGV: base entry JSON, 'voluntary_block' | 'voluntary_unblock' | 'permanent_block'
local sub_key, journal_key, mode = KEYS[1], KEYS[2], ARGV[2]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end

local status = redis.call('HGET', sub_key, 'status')
if status == 'blocked_permanent' then
  if mode == 'permanent_block' then return answer('already_blocked', {status = status}) end
  return answer('blocked', {status = status})
end

local new_status
local keep_service = false
if mode == 'voluntary_block' then
  if status == 'blocked_voluntary' then return answer('already_blocked', {status = status}) end
  new_status, keep_service = 'blocked_voluntary', true
elseif mode == 'voluntary_unblock' then
  if status ~= 'blocked_voluntary' then return answer('not_blocked', {status = status}) end
  new_status = 'active'
else
  -- The voluntary_block service means "reversible"; a permanent block is not.
  new_status = 'blocked_permanent'
end

local services = services_of(sub_key)
local services_after = with_item(services, 'voluntary_block', keep_service)
redis.call('HSET', sub_key, 'status', new_status, 'services', encode_list(services_after))
journal(journal_key, ARGV[1], mode, {status = status, services = services},
  {status = new_status, services = services_after})
return answer('ok', {status = new_status})
