-- Move money from one subscriber to another and take the sender's fee, all or nothing.
-- The two subscribers' keys carry different hash tags, so on Redis Cluster this script would be
-- refused (CROSSSLOT): a cluster deployment needs another design (e.g. hold, then credit).
-- KEYS: sender sub, sender journal, sender daily totals, recipient sub, recipient journal
-- ARGV: sender base entry JSON, recipient base entry JSON, amount, fee, UTC day number,
--       daily limit, balance ceiling
local s_sub, s_journal, s_daily, r_sub, r_journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local amount, fee, day = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local limit, ceiling = tonumber(ARGV[6]), tonumber(ARGV[7])

if redis.call('EXISTS', s_sub) == 0 then return answer('unknown_subscriber', {party = 'sender'}) end
if redis.call('EXISTS', r_sub) == 0 then
  return answer('unknown_subscriber', {party = 'recipient'})
end
if redis.call('HGET', s_sub, 'status') ~= 'active' then return answer('blocked') end
if redis.call('HGET', r_sub, 'status') ~= 'active' then return answer('recipient_blocked') end

local sent = 0
if redis.call('HGET', s_daily, 'day') == day then
  sent = tonumber(redis.call('HGET', s_daily, 'sent_kop'))
end
if sent + amount > limit then
  local left = limit - sent
  if left < 0 then left = 0 end
  return answer('daily_limit', {limit_kop = limit, sent_kop = sent, left_kop = left})
end
local s_before = balance_of(s_sub)
if s_before < amount + fee then
  return answer('insufficient_funds', {balance_kop = s_before, needed_kop = amount + fee})
end
local r_before = balance_of(r_sub)
if r_before + amount > ceiling then
  return answer('invalid', {field = 'amount_kop', reason = 'balance_overflow'})
end

local s_mid = redis.call('HINCRBY', s_sub, 'balance_kop', -amount)
local s_after = s_mid
if fee > 0 then s_after = redis.call('HINCRBY', s_sub, 'balance_kop', -fee) end
local r_after = redis.call('HINCRBY', r_sub, 'balance_kop', amount)
redis.call('HSET', s_daily, 'day', day, 'sent_kop', sent + amount)

local sender, recipient = redis.call('HGET', s_sub, 'msisdn'), redis.call('HGET', r_sub, 'msisdn')
local transfer_id = cjson.decode(ARGV[1]).id
journal(s_journal, ARGV[1], 'transfer_out', {balance_kop = s_before}, {balance_kop = s_mid},
  {amount_kop = amount, recipient = recipient, transfer_id = transfer_id})
if fee > 0 then
  -- The fee leaves the system: nobody is credited with it.
  journal(s_journal, ARGV[1], 'transfer_fee', {balance_kop = s_mid}, {balance_kop = s_after},
    merged(with_suffix(ARGV[1], '-fee'), {fee_kop = fee, transfer_id = transfer_id}))
end
journal(r_journal, ARGV[2], 'transfer_in', {balance_kop = r_before}, {balance_kop = r_after},
  {amount_kop = amount, sender = sender, transfer_id = transfer_id})
return answer('ok', {fee_kop = fee, balance_kop = s_after, recipient_balance_kop = r_after,
  transfer_id = transfer_id})
