-- After step 3, in the recipient's slot: the sender closed this intent, so its verdict may be
-- forgotten once `expires` passes. Only the verdict of this very intent (same created_at) is
-- confirmed: a later intent of the same id keeps its own, unconfirmed one.
-- KEYS: recipient's verdicts, their expiry set
-- ARGV: sender, id, the intent's created_at, expires
local field = verdict_field(ARGV[1], ARGV[2])
local raw = redis.call('HGET', KEYS[1], field)
if not raw then return answer('missing') end
if tonumber(cjson.decode(raw).created or '0') ~= tonumber(ARGV[3]) then
  return answer('missing')
end
redis.call('ZADD', KEYS[2], ARGV[4], field)
return answer('ok')
