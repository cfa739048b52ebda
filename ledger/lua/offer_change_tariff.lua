-- Move to another tariff: charge the change fee, start the new tariff's packages, accrue points.
-- KEYS: sub, pkg, pts, journal
-- ARGV: base entry JSON, tariff id, change fee, tariff packages JSON {id: {minutes, sms, mb}},
--       kopecks per mobile point
local sub_key, pkg_key, pts_key, journal_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tariff, fee, rate = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local tariff_packages = cjson.decode(ARGV[4])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
local old_tariff = redis.call('HGET', sub_key, 'tariff')
if old_tariff == tariff then return answer('same_tariff', {tariff = tariff}) end
local refusal = charge_refusal(sub_key, fee)
if refusal then return answer(refusal, {price_kop = fee}) end

local old_packages = current_packages(pkg_key, old_tariff, tariff_packages)
local new_packages = current_packages(pkg_key, tariff, tariff_packages)
local balance_before, balance_after = debit(sub_key, fee)
redis.call('HSET', sub_key, 'tariff', tariff)
store_packages(pkg_key, tariff, new_packages)
journal(journal_key, ARGV[1], 'tariff_changed',
  {balance_kop = balance_before, tariff = old_tariff, packages = old_packages},
  {balance_kop = balance_after, tariff = tariff, packages = new_packages},
  {spend_kop = fee, tariff_id = tariff})
local points = accrue(sub_key, pts_key, journal_key, ARGV[1], 'mobile', fee, rate)
return answer('ok', {tariff = tariff, balance_kop = balance_after, packages = new_packages,
  spend_kop = fee, points_accrued = points})
