-- Step 1 of a group membership change, in the main number's slot.
-- group_add: check the main's side and reserve it as a main (so nobody makes it a member of
-- another group meanwhile); the member joins in step 2 and the member set changes in step 3.
-- group_remove: take the member out of the member set now (journaled); step 2 clears the
-- member's own pointer. A second call with the same id answers the intent as it stands.
-- A hold also forgets a few of the main's expired closed intents.
-- KEYS: main sub, main journal, main's member set, intents, queue, closed intents
-- ARGV: main base entry JSON, id, kind, member, now, active_at, 'remove' | 'leave', actor
local m_sub, m_journal, members_key, intents, queue = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local closed = KEYS[6]
local now = tonumber(ARGV[5])
local id, kind, member = ARGV[2], ARGV[3], ARGV[4]

local known = intent_of(intents, id)
if known and not expired(known, now) then return answer('repeat', {intent = known}) end
if redis.call('EXISTS', m_sub) == 0 then return answer('unknown_subscriber', {party = 'main'}) end
local main = redis.call('HGET', m_sub, 'msisdn')
local main_group = group_of(m_sub)
local intent = {kind = kind, from = main, to = member, state = 'pending', created_at = ARGV[5],
  actor = ARGV[8], amount = 0, fee = 0}

if kind == 'group_add' then
  if redis.call('HGET', m_sub, 'status') ~= 'active' then
    return answer('blocked', {party = 'main'})
  end
  if not has_item(services_of(m_sub), 'number_management') then return answer('not_enabled') end
  if main_group and main_group.role ~= 'main' then
    return answer('main_in_group', {main = main_group.main})
  end
  if not main_group then set_group(m_sub, {main = main, role = 'main', state = 'active'}) end
  intent.main_before = group_json(main_group)
  intent.active_at = ARGV[6]
else
  if redis.call('HEXISTS', members_key, member) == 0 then return answer('not_member') end
  redis.call('HDEL', members_key, member)
  intent.by = ARGV[7]
  local main_after = main_group
  if release_main_if_idle(m_sub, members_key, intents, queue, id) then main_after = nil end
  journal(m_journal, ARGV[1], 'group_member_removed', {group = group_json(main_group)},
    {group = group_json(main_after)}, {member = member, by = ARGV[7]})
end
save_intent(intents, queue, closed, id, intent)
prune_intents(intents, closed, now, PRUNE_BATCH)
return answer('ok', {intent = intent})
