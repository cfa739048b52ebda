-- Take the orders whose documents are ready off the due queue: whoever takes one is the only one
-- to ever see it.
-- KEYS: due zset
-- ARGV: now, maximum count
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return answer('ok', {members = due})
