-- Accrue points for spending in another channel (shops, home internet, partner cards).
-- KEYS: sub, pts, journal
-- ARGV: base entry JSON, channel, amount (kopecks), kopecks per point
local sub_key, pts_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') == 'blocked_permanent' then return answer('blocked') end
local points = accrue(sub_key, pts_key, journal_key, ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]))
return answer('ok', {points_accrued = points,
  bonus_points = tonumber(redis.call('HGET', sub_key, 'bonus_points'))})
