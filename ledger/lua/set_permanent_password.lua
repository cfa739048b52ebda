-- Store a permanent password hash; refused unless the number is active.
-- KEYS: sub, pw, journal
-- ARGV: base entry JSON, hash fields JSON
local sub_key, pw_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end

local had = redis.call('HEXISTS', pw_key, 'perm_hash') == 1
local fields = cjson.decode(ARGV[2])
for field, value in pairs(fields) do redis.call('HSET', pw_key, field, value) end
redis.call('HINCRBY', pw_key, 'version', 1)
journal(journal_key, ARGV[1], 'permanent_password_set',
  {has_permanent_password = had}, {has_permanent_password = true})
return answer('ok')
