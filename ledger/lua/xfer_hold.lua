-- Step 1 of a cross-slot move, in the sender's slot: validate, take the amount (and the fee),
-- journal it and record the intent. A second call with the same id changes nothing and answers
-- the intent as it stands ('repeat'), until that intent is past its retention window: the id then
-- starts a new intent. A hold also forgets a few of the sender's expired closed intents.
-- With `keep` (a caller-chosen id) a refusal is recorded here too, as a closed intent in state
-- 'declined': this script is where the money would be taken, so whichever request of an id runs
-- it first fixes the id's verdict, applied or declined, and every later one reads it as a
-- 'repeat' (a top-up in between changes nothing). A refusal the caller already decided from its
-- reads of both sides (`refusal`) is recorded the same way instead of the checks here.
-- KEYS: sender sub, sender journal, sender daily totals, sender's group members, intents, queue,
--       closed intents
-- ARGV: sender base entry JSON, id, kind, recipient, amount, fee, UTC day, daily limit, now,
--       actor, retention (s), keep ('1' | '0'), refusal JSON ('' when none)
local s_sub, s_journal, s_daily, s_group = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local intents, queue, closed = KEYS[5], KEYS[6], KEYS[7]
local id, kind, recipient = ARGV[2], ARGV[3], ARGV[4]
local amount, fee, day = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local limit, now = tonumber(ARGV[8]), tonumber(ARGV[9])
local retention, keep = tonumber(ARGV[11]), ARGV[12] == '1'
local move = MOVES[kind]

local known = intent_of(intents, id)
if known and not expired(known, now) then return answer('repeat', {intent = known}) end

local function decline(outcome, values)
  if keep then
    local record = {kind = kind, from = cjson.decode(ARGV[1]).msisdn, to = recipient,
      amount = amount, state = 'declined', created_at = ARGV[9], actor = ARGV[10],
      verdict = {outcome = outcome, values = values or {}}, closed_at = now,
      expires = now + retention}
    save_declined(s_sub, intents, queue, closed, id, record, retention)
    prune_intents(intents, closed, now, PRUNE_BATCH)
  end
  return answer(outcome, values)
end

if ARGV[13] ~= '' then
  local refusal = cjson.decode(ARGV[13])
  return decline(refusal.outcome, refusal.values)
end
if redis.call('EXISTS', s_sub) == 0 then
  return decline('unknown_subscriber', {[move.party] = move.sender})
end
if redis.call('HGET', s_sub, 'status') ~= 'active' then return decline('blocked') end

local sent = 0
if kind == 'transfer' then
  if redis.call('HGET', s_daily, 'day') == day then
    sent = tonumber(redis.call('HGET', s_daily, 'sent_kop'))
  end
  if sent + amount > limit then
    local left = limit - sent
    if left < 0 then left = 0 end
    return decline('daily_limit', {limit_kop = limit, sent_kop = sent, left_kop = left})
  end
elseif kind == 'group_topup' then
  local active_at = redis.call('HGET', s_group, recipient)
  if not active_at then return decline('not_member') end
  if now < tonumber(active_at) then return decline('pending', {active_at = active_at}) end
end

local before = tonumber(redis.call('HGET', s_sub, move.field))
if before < amount + fee then
  if kind == 'points_gift' then return decline('insufficient_points', {bonus_points = before}) end
  return decline('insufficient_funds', {balance_kop = before, needed_kop = amount + fee})
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
