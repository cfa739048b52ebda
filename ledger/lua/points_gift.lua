-- Move points from one subscriber to another: both sides change together or neither does.
-- KEYS: sender sub, recipient sub, sender journal, recipient journal
-- ARGV: sender base entry JSON, recipient base entry JSON, points
local sender_key, recipient_key = KEYS[1], KEYS[2]
local points = tonumber(ARGV[3])
if redis.call('EXISTS', sender_key) == 0 then
  return answer('unknown_subscriber', {side = 'sender'})
end
if redis.call('EXISTS', recipient_key) == 0 then
  return answer('unknown_subscriber', {side = 'recipient'})
end
if redis.call('HGET', sender_key, 'status') ~= 'active' then return answer('blocked') end
if redis.call('HGET', recipient_key, 'status') ~= 'active' then
  return answer('recipient_blocked')
end
local sender_before = tonumber(redis.call('HGET', sender_key, 'bonus_points'))
if sender_before < points then
  return answer('insufficient_points', {bonus_points = sender_before})
end
local recipient_before = tonumber(redis.call('HGET', recipient_key, 'bonus_points'))
local sender_after = redis.call('HINCRBY', sender_key, 'bonus_points', -points)
local recipient_after = redis.call('HINCRBY', recipient_key, 'bonus_points', points)
local sender_msisdn = redis.call('HGET', sender_key, 'msisdn')
local recipient_msisdn = redis.call('HGET', recipient_key, 'msisdn')
journal(KEYS[3], ARGV[1], 'points_gift_sent', {bonus_points = sender_before},
  {bonus_points = sender_after}, {points = points, counterparty = recipient_msisdn})
journal(KEYS[4], ARGV[2], 'points_gift_received', {bonus_points = recipient_before},
  {bonus_points = recipient_after}, {points = points, counterparty = sender_msisdn})
return answer('ok', {points = points, bonus_points = sender_after})
