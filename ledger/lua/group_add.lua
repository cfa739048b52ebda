-- Add a number to the main number's management group; it stays pending until active_at.
-- The two subscribers' keys carry different hash tags (see money_transfer.lua on Cluster).
-- KEYS: main sub, main journal, main's member set, member sub, member journal
-- ARGV: main base entry JSON, member base entry JSON, now, active_at
local m_sub, m_journal, members_key, x_sub, x_journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, active_at = tonumber(ARGV[3]), tonumber(ARGV[4])

if redis.call('EXISTS', m_sub) == 0 then return answer('unknown_subscriber', {party = 'main'}) end
if redis.call('EXISTS', x_sub) == 0 then return answer('unknown_subscriber', {party = 'member'}) end
if redis.call('HGET', m_sub, 'status') ~= 'active' then return answer('blocked', {party = 'main'}) end
if redis.call('HGET', x_sub, 'status') ~= 'active' then
  return answer('blocked', {party = 'member'})
end
if not has_item(services_of(m_sub), 'number_management') then return answer('not_enabled') end
if not has_item(services_of(x_sub), 'number_management') then
  return answer('member_not_enabled')
end
local main_group = group_of(m_sub)
if main_group and main_group.role ~= 'main' then
  return answer('main_in_group', {main = main_group.main})
end
local member_group = group_of(x_sub)
if member_group then return answer('member_in_group', {main = member_group.main}) end

local main, member = redis.call('HGET', m_sub, 'msisdn'), redis.call('HGET', x_sub, 'msisdn')
local state = 'pending'
if now >= active_at then state = 'active' end
local main_after = {main = main, role = 'main', state = 'active'}
local member_after = {main = main, role = 'member', state = state, active_at = active_at}
-- The member set keeps active_at as the caller's exact string: decisions read it from here.
redis.call('HSET', members_key, member, ARGV[4])
set_group(m_sub, main_after)
set_group(x_sub, member_after)
journal(m_journal, ARGV[1], 'group_member_added', {group = group_json(main_group)},
  {group = main_after}, {member = member, active_at = active_at})
journal(x_journal, ARGV[2], 'group_joined', {group = cjson.null}, {group = member_after},
  {main = main, active_at = active_at})
return answer('ok', {state = state})
