-- Forget one subscriber's expired closed state at once (both sides, one slot): its closed intents
-- and the verdicts it keeps as a recipient, at most ARGV[2] of each. For subscribers that stop
-- moving money: the steps themselves forget a few entries each.
-- KEYS: intents, closed intents, verdicts, their expiry set, their floor
-- ARGV: now, limit
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local intents = prune_intents(KEYS[1], KEYS[2], now, limit)
local verdicts = prune_verdicts(KEYS[3], KEYS[4], KEYS[5], now, limit)
return answer('ok', {intents = intents, verdicts = verdicts})
