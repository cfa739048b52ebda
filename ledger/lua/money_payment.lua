-- Apply a top-up once per payment id; an outstanding promised payment is repaid from it first.
-- KEYS: sub, journal, pay, promise
-- ARGV: base entry JSON, payment id, amount (kopecks), source, balance ceiling
local sub_key, journal_key, pay_key, promise_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local payment_id, amount, source = ARGV[2], tonumber(ARGV[3]), ARGV[4]

local function payment_values(record, duplicate)
  local values = {balance_kop = record.balance_kop, duplicate = duplicate}
  -- Only present when something was repaid, so a plain top-up answers exactly as before.
  if record.promise_repaid_kop and record.promise_repaid_kop > 0 then
    values.promise_repaid_kop = record.promise_repaid_kop
  end
  return values
end

local prior = redis.call('HGET', pay_key, payment_id)
if prior then
  local first = cjson.decode(prior)
  if first.amount_kop ~= amount then
    return answer('conflict', {payment_id = payment_id, amount_kop = first.amount_kop})
  end
  return answer('ok', payment_values(first, true))
end
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end

local before = balance_of(sub_key)
if before + amount > tonumber(ARGV[5]) then
  return answer('invalid', {field = 'amount_kop', reason = 'balance_overflow'})
end
local credited = redis.call('HINCRBY', sub_key, 'balance_kop', amount)
journal(journal_key, ARGV[1], 'payment', {balance_kop = before}, {balance_kop = credited},
  {payment_id = payment_id, amount_kop = amount, source = source})

local after, repaid = credited, 0
local outstanding = tonumber(redis.call('HGET', promise_key, 'amount_kop') or '0')
if outstanding > 0 then
  repaid = math.min(amount, outstanding)
  after = redis.call('HINCRBY', sub_key, 'balance_kop', -repaid)
  local left = outstanding - repaid
  local services = services_of(sub_key)
  local services_after = services
  if left == 0 then
    redis.call('DEL', promise_key)
    services_after = with_item(services, 'promised_payment', false)
    redis.call('HSET', sub_key, 'services', encode_list(services_after))
  else
    redis.call('HSET', promise_key, 'amount_kop', left)
  end
  journal(journal_key, ARGV[1], 'promised_payment_repaid',
    {balance_kop = credited, promise_kop = outstanding, services = services},
    {balance_kop = after, promise_kop = left, services = services_after},
    merged(with_suffix(ARGV[1], '-repay'), {payment_id = payment_id, repaid_kop = repaid}))
end

local record = {balance_kop = after, amount_kop = amount, source = source,
  promise_repaid_kop = repaid}
redis.call('HSET', pay_key, payment_id, cjson.encode(record))
return answer('ok', payment_values(record, false))
