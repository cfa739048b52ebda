-- Charge a subscriber for a service; a blocked number is never charged.
-- KEYS: sub, journal
-- ARGV: base entry JSON, amount (kopecks), reason
local sub_key, journal_key = KEYS[1], KEYS[2]
local amount, reason = tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end

local before = balance_of(sub_key)
if before < amount then
  return answer('insufficient_funds', {balance_kop = before, needed_kop = amount})
end
local after = redis.call('HINCRBY', sub_key, 'balance_kop', -amount)
-- spend_kop is what bonus-point accrual keys on.
journal(journal_key, ARGV[1], 'charge', {balance_kop = before}, {balance_kop = after},
  {amount_kop = amount, spend_kop = amount, reason = reason})
return answer('ok', {balance_kop = after, charged_kop = amount})
