-- Take a member out of a main number's group (the main removes it, or the member leaves).
-- The group ends when its last member goes.
-- KEYS: main sub, main journal, main's member set, member sub, member journal
-- ARGV: main base entry JSON, member base entry JSON, 'remove' | 'leave'
local m_sub, m_journal, members_key, x_sub, x_journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if redis.call('EXISTS', m_sub) == 0 then return answer('unknown_subscriber', {party = 'main'}) end
if redis.call('EXISTS', x_sub) == 0 then return answer('unknown_subscriber', {party = 'member'}) end

local main, member = redis.call('HGET', m_sub, 'msisdn'), redis.call('HGET', x_sub, 'msisdn')
local member_group = group_of(x_sub)
if not member_group or member_group.role ~= 'member' or member_group.main ~= main
    or redis.call('HEXISTS', members_key, member) == 0 then
  return answer('not_member')
end

redis.call('HDEL', members_key, member)
set_group(x_sub, nil)
local main_group = group_of(m_sub)
local main_after = main_group
if redis.call('HLEN', members_key) == 0 then
  main_after = nil
  set_group(m_sub, nil)
end
journal(m_journal, ARGV[1], 'group_member_removed', {group = group_json(main_group)},
  {group = group_json(main_after)}, {member = member, by = ARGV[3]})
journal(x_journal, ARGV[2], 'group_left', {group = member_group}, {group = cjson.null},
  {main = main, by = ARGV[3]})
return answer('ok', {main = main, member = member})
