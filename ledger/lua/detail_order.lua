-- Record a call detail order (free of charge).
-- KEYS: sub, orders, journal
-- ARGV: base entry JSON, order id, order JSON
local sub_key, orders_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
redis.call('HSET', orders_key, ARGV[2], ARGV[3])
local order = cjson.decode(ARGV[3])
journal(journal_key, ARGV[1], 'detail_ordered', {order = cjson.null}, {order = ARGV[2]},
  {order_id = ARGV[2], format = order.format, delivery = order.delivery,
   period_days = order.period_days})
return answer('ok', {order_id = ARGV[2], ready_at = order.ready_at})
