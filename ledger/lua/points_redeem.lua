-- Spend points on a reward: package units added to the current tariff's remainders, or an
-- option connected free of charge.
-- KEYS: sub, pkg, opts, journal
-- ARGV: base entry JSON, reward id, cost in points, units JSON ({} for an option), option id
--       ('' for units), option state JSON, tariff packages JSON
local sub_key, pkg_key, opts_key, journal_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local reward_id, cost, option_id = ARGV[2], tonumber(ARGV[3]), ARGV[5]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') ~= 'active' then return answer('blocked') end
if option_id ~= '' and redis.call('HEXISTS', opts_key, option_id) == 1 then
  return answer('already_connected', {option_id = option_id})
end
local points_before = tonumber(redis.call('HGET', sub_key, 'bonus_points'))
if points_before < cost then
  return answer('insufficient_points', {bonus_points = points_before, points = cost})
end

local points_after = redis.call('HINCRBY', sub_key, 'bonus_points', -cost)
local before, after = {bonus_points = points_before}, {bonus_points = points_after}
if option_id ~= '' then
  redis.call('HSET', opts_key, option_id, ARGV[6])
  before.connected, after.connected = false, true
else
  local tariff = redis.call('HGET', sub_key, 'tariff')
  local packages = current_packages(pkg_key, tariff, cjson.decode(ARGV[7]))
  before.packages = {minutes = packages.minutes, sms = packages.sms, mb = packages.mb}
  for unit, amount in pairs(cjson.decode(ARGV[4])) do
    packages[unit] = packages[unit] + amount
  end
  store_packages(pkg_key, tariff, packages)
  after.packages = packages
end
journal(journal_key, ARGV[1], 'reward_redeemed', before, after,
  {reward_id = reward_id, points = cost, option_id = option_id ~= '' and option_id or nil})
return answer('ok', {reward_id = reward_id, bonus_points = points_after})
