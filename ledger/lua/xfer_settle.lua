-- Step 3 of a cross-slot change, in the sender's (or main's) slot: close the intent with the
-- recipient's verdict. A refused move is refunded here (journaled); a refused group join
-- releases the main's reservation. A settled intent is never changed again; it is kept until
-- `expires` (now + the retention window) and then forgotten by a later step of this sender.
-- KEYS: sender sub, sender journal, sender daily totals, sender's group members, intents, queue,
--       closed intents
-- ARGV: sender base entry JSON, id, verdict JSON, the intent's created_at, now, retention (s)
local s_sub, s_journal, s_daily, s_group = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local intents, queue, closed = KEYS[5], KEYS[6], KEYS[7]
local id = ARGV[2]
local now, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local intent = intent_of(intents, id)
-- Another intent of this id (the one the caller knew was forgotten) is none of its business.
if not intent or tonumber(intent.created_at) ~= tonumber(ARGV[4]) then return answer('missing') end
if intent.state ~= 'pending' then return answer('ok', {intent = intent}) end
local verdict = cjson.decode(ARGV[3])
local values = verdict.values or {}
intent.verdict = verdict

local move = MOVES[intent.kind]
if move then
  if verdict.outcome == 'ok' then
    intent.state = 'done'
    intent.recipient_after = values.after
  else
    local back = intent.amount + intent.fee
    local before = tonumber(redis.call('HGET', s_sub, move.field))
    local after = redis.call('HINCRBY', s_sub, move.field, back)
    if intent.kind == 'transfer' and redis.call('HGET', s_daily, 'day') == intent.day then
      redis.call('HINCRBY', s_daily, 'sent_kop', -intent.amount)
    end
    journal(s_journal, ARGV[1], move.refund, {[move.field] = before}, {[move.field] = after},
      {[move.unit] = intent.amount, fee_kop = intent.fee, transfer_id = id,
       reason = verdict.outcome})
    intent.state = 'refunded'
    intent.sender_after = after
  end
elseif intent.kind == 'group_add' then
  if verdict.outcome == 'ok' then
    local main_after = {main = intent.from, role = 'main', state = 'active'}
    -- The member set keeps active_at as the caller's exact string: decisions read it from here.
    redis.call('HSET', s_group, intent.to, intent.active_at)
    set_group(s_sub, main_after)
    journal(s_journal, ARGV[1], 'group_member_added', {group = intent.main_before},
      {group = main_after}, {member = intent.to, active_at = tonumber(intent.active_at)})
    intent.state = 'done'
  else
    release_main_if_idle(s_sub, s_group, intents, queue, id)
    intent.state = 'refused'
  end
else
  intent.state = 'done'
end
intent.closed_at = now
intent.expires = now + retention
save_intent(intents, queue, closed, id, intent)
prune_intents(intents, closed, now, PRUNE_BATCH)
return answer('ok', {intent = intent})
