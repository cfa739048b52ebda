-- Connect one catalogue option (or subscription): charge its price, accrue points.
-- KEYS: sub, opts, pts, journal
-- ARGV: base entry JSON, option id, price, option state JSON, kopecks per mobile point
local sub_key, opts_key, pts_key, journal_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local option_id, price, rate = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
if redis.call('HEXISTS', opts_key, option_id) == 1 then
  return answer('already_connected', {option_id = option_id})
end
local refusal = charge_refusal(sub_key, price)
if refusal then return answer(refusal, {price_kop = price}) end

local balance_before, balance_after = debit(sub_key, price)
redis.call('HSET', opts_key, option_id, ARGV[4])
journal(journal_key, ARGV[1], 'option_connected',
  {balance_kop = balance_before, connected = false},
  {balance_kop = balance_after, connected = true},
  {spend_kop = price, option_id = option_id})
local points = accrue(sub_key, pts_key, journal_key, ARGV[1], 'mobile', price, rate)
return answer('ok', {option_id = option_id, balance_kop = balance_after, spend_kop = price,
  points_accrued = points})
