-- Credit a promised payment (обещанный платёж), to be repaid from the next top-up.
-- KEYS: sub, journal, promise
-- ARGV: base entry JSON, now, amount (kopecks), due_at, balance threshold
local sub_key, journal_key, promise_key = KEYS[1], KEYS[2], KEYS[3]
local now, amount, threshold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end

local outstanding = tonumber(redis.call('HGET', promise_key, 'amount_kop') or '0')
if outstanding > 0 then
  local due_at = redis.call('HGET', promise_key, 'due_at')
  local outcome = 'outstanding'
  if now >= tonumber(due_at) then outcome = 'overdue' end
  return answer(outcome, {amount_kop = outstanding, due_at = due_at})
end
local before = balance_of(sub_key)
if before >= threshold then
  return answer('not_allowed', {balance_kop = before, threshold_kop = threshold})
end

local after = redis.call('HINCRBY', sub_key, 'balance_kop', amount)
redis.call('HSET', promise_key, 'amount_kop', amount, 'principal_kop', amount,
  'taken_at', ARGV[2], 'due_at', ARGV[4])
local services = services_of(sub_key)
local services_after = with_item(services, 'promised_payment', true)
redis.call('HSET', sub_key, 'services', encode_list(services_after))
journal(journal_key, ARGV[1], 'promised_payment',
  {balance_kop = before, promise_kop = 0, services = services},
  {balance_kop = after, promise_kop = amount, services = services_after},
  {amount_kop = amount, due_at = tonumber(ARGV[4])})
return answer('ok', {amount_kop = amount, balance_kop = after})
