-- Apply a top-up once per payment id.
-- KEYS: sub, journal, pay
-- ARGV: base entry JSON, payment id, amount (kopecks), source, balance ceiling
local sub_key, journal_key, pay_key = KEYS[1], KEYS[2], KEYS[3]
local payment_id, amount, source = ARGV[2], tonumber(ARGV[3]), ARGV[4]

local prior = redis.call('HGET', pay_key, payment_id)
if prior then
  local first = cjson.decode(prior)
  if first.amount_kop ~= amount then
    return answer('conflict', {payment_id = payment_id, amount_kop = first.amount_kop})
  end
  return answer('ok', {balance_kop = first.balance_kop, duplicate = true})
end
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end

local before = tonumber(redis.call('HGET', sub_key, 'balance_kop'))
if before + amount > tonumber(ARGV[5]) then
  return answer('invalid', {field = 'amount_kop', reason = 'balance_overflow'})
end
local after = redis.call('HINCRBY', sub_key, 'balance_kop', amount)
redis.call('HSET', pay_key, payment_id,
  cjson.encode({balance_kop = after, amount_kop = amount, source = source}))
journal(journal_key, ARGV[1], 'payment', {balance_kop = before}, {balance_kop = after},
  {payment_id = payment_id, amount_kop = amount, source = source})
return answer('ok', {balance_kop = after, duplicate = false})
