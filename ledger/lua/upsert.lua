-- Create a subscriber with defaults (plus changes) or apply changes to an existing one.
-- KEYS: sub, journal, pw
-- ARGV: base entry JSON, defaults JSON, changes JSON (field -> string), account ('' = none yet)
local sub_key, journal_key, pw_key = KEYS[1], KEYS[2], KEYS[3]
local changes = cjson.decode(ARGV[3])
local locked = redis.call('HGET', pw_key, 'locked') == '1'

if redis.call('EXISTS', sub_key) == 0 then
  if ARGV[4] == '' then return answer('need_account') end
  local record = cjson.decode(ARGV[2])
  record.account = ARGV[4]
  for field, value in pairs(changes) do record[field] = value end
  local after = {}
  for field, value in pairs(record) do
    redis.call('HSET', sub_key, field, value)
    after[field] = typed(field, value)
  end
  journal(journal_key, ARGV[1], 'subscriber_created', {}, after)
  return answer('ok', {created = true, record = record, login_locked = locked})
end

local current = hash_to_table(redis.call('HGETALL', sub_key))
if changes.status and current.status == 'blocked_permanent'
    and changes.status ~= 'blocked_permanent' then
  return answer('invalid', {field = 'status', reason = 'permanent_block_is_final'})
end
local before, after, changed = {}, {}, false
for field, value in pairs(changes) do
  if current[field] ~= value then
    before[field] = typed(field, current[field])
    after[field] = typed(field, value)
    current[field] = value
    redis.call('HSET', sub_key, field, value)
    changed = true
  end
end
if changed then
  journal(journal_key, ARGV[1], 'subscriber_updated', before, after)
end
return answer('ok', {created = false, record = current, login_locked = locked})
