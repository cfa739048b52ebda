-- Keep the verdict of a declined transfer on its id's claim, so a repeat within the claim's
-- window answers it again and never applies later (a client may take a refusal as final). The
-- first verdict stays; a claim that names other arguments, or none, is left alone.
-- KEYS: claim
-- ARGV: fingerprint, verdict JSON
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local space = string.find(raw, ' ', 1, true) or 0
local rest = string.sub(raw, space + 1)
if rest ~= ARGV[1] then return 0 end  -- another fingerprint, or a verdict already kept
redis.call('SET', KEYS[1], raw .. '\n' .. ARGV[2], 'KEEPTTL')
return 1
