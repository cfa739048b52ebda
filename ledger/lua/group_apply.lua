-- Step 2 of a group membership change, in the member's slot: the member's own `group` pointer.
-- The verdict is kept per main and id, so a replay answers it again and changes nothing
-- (retention as in xfer_credit.lua).
-- KEYS: member sub, member journal, member's verdicts, their expiry set, their floor
-- ARGV: member base entry JSON, id, kind, main, the intent's created_at, active_at,
--       'remove' | 'leave', now
local x_sub, x_journal, applied, expiry, floor = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, kind, main = ARGV[2], ARGV[3], ARGV[4]
local field = verdict_field(main, id)

prune_verdicts(applied, expiry, floor, tonumber(ARGV[8]), PRUNE_BATCH)
local seen = known_verdict(applied, floor, field, ARGV[5])
if seen then return answer('ok', seen) end

local verdict
local member_group = group_of(x_sub)
if kind == 'group_add' then
  local now, active_at = tonumber(ARGV[5]), tonumber(ARGV[6])
  if redis.call('EXISTS', x_sub) == 0 then
    verdict = {outcome = 'unknown_subscriber', values = {party = 'member'}}
  elseif redis.call('HGET', x_sub, 'status') ~= 'active' then
    verdict = {outcome = 'blocked', values = {party = 'member'}}
  elseif not has_item(services_of(x_sub), 'number_management') then
    verdict = {outcome = 'member_not_enabled'}
  elseif member_group then
    verdict = {outcome = 'member_in_group', values = {main = member_group.main}}
  else
    local state = 'pending'
    if now >= active_at then state = 'active' end
    local member_after = {main = main, role = 'member', state = state, active_at = active_at}
    set_group(x_sub, member_after)
    journal(x_journal, ARGV[1], 'group_joined', {group = cjson.null}, {group = member_after},
      {main = main, active_at = active_at})
    verdict = {outcome = 'ok', values = {state = state}}
  end
else
  -- The main already let the member go: the pointer follows, if it still points there.
  if member_group and member_group.role == 'member' and member_group.main == main then
    set_group(x_sub, nil)
    journal(x_journal, ARGV[1], 'group_left', {group = member_group}, {group = cjson.null},
      {main = main, by = ARGV[7]})
  end
  verdict = {outcome = 'ok'}
end
save_verdict(applied, expiry, field, ARGV[5], verdict)
return answer('ok', verdict)
