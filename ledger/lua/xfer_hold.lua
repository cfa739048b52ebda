-- Step 1 of a cross-slot move, in the sender's slot: validate, take the amount (and the fee),
-- journal it and record the intent. A second call with the same id changes nothing and answers
-- the intent as it stands ('repeat'), until that intent is past its retention window: the id then
-- starts a new intent. A hold also forgets a few of the sender's expired closed intents.
-- KEYS: sender sub, sender journal, sender daily totals, sender's group members, intents, queue,
--       closed intents
-- ARGV: sender base entry JSON, id, kind, recipient, amount, fee, UTC day, daily limit, now,
--       actor
local s_sub, s_journal, s_daily, s_group = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local intents, queue, closed = KEYS[5], KEYS[6], KEYS[7]
local id, kind, recipient = ARGV[2], ARGV[3], ARGV[4]
local amount, fee, day = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local limit, now = tonumber(ARGV[8]), tonumber(ARGV[9])
local move = MOVES[kind]

local known = intent_of(intents, id)
if known and not expired(known, now) then return answer('repeat', {intent = known}) end
if redis.call('EXISTS', s_sub) == 0 then
  return answer('unknown_subscriber', {[move.party] = move.sender})
end
if redis.call('HGET', s_sub, 'status') ~= 'active' then return answer('blocked') end

local sent = 0
if kind == 'transfer' then
  if redis.call('HGET', s_daily, 'day') == day then
    sent = tonumber(redis.call('HGET', s_daily, 'sent_kop'))
  end
  if sent + amount > limit then
    local left = limit - sent
    if left < 0 then left = 0 end
    return answer('daily_limit', {limit_kop = limit, sent_kop = sent, left_kop = left})
  end
elseif kind == 'group_topup' then
  local active_at = redis.call('HGET', s_group, recipient)
  if not active_at then return answer('not_member') end
  if now < tonumber(active_at) then return answer('pending', {active_at = active_at}) end
end

local before = tonumber(redis.call('HGET', s_sub, move.field))
if before < amount + fee then
  if kind == 'points_gift' then return answer('insufficient_points', {bonus_points = before}) end
  return answer('insufficient_funds', {balance_kop = before, needed_kop = amount + fee})
end

local mid = redis.call('HINCRBY', s_sub, move.field, -amount)
local after = mid
if fee > 0 then after = redis.call('HINCRBY', s_sub, move.field, -fee) end
if kind == 'transfer' then redis.call('HSET', s_daily, 'day', day, 'sent_kop', sent + amount) end

local sender = redis.call('HGET', s_sub, 'msisdn')
local extra = {[move.unit] = amount, transfer_id = id}
if kind == 'transfer' then extra.recipient = recipient
elseif kind == 'group_topup' then extra.member = recipient
else extra.counterparty = recipient end
journal(s_journal, ARGV[1], move.out, {[move.field] = before}, {[move.field] = mid}, extra)
if fee > 0 then
  -- The fee leaves the system: nobody is credited with it.
  journal(s_journal, ARGV[1], 'transfer_fee', {[move.field] = mid}, {[move.field] = after},
    merged(with_suffix(ARGV[1], '-fee'), {fee_kop = fee, transfer_id = id}))
end

local intent = {kind = kind, from = sender, to = recipient, amount = amount, fee = fee, day = day,
  state = 'pending', created_at = ARGV[9], actor = ARGV[10], sender_after = after}
save_intent(intents, queue, closed, id, intent)
prune_intents(intents, closed, now, PRUNE_BATCH)
return answer('ok', {intent = intent})
