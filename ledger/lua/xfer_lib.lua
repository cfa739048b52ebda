-- Cross-slot moves (see ledger/transfers.py): an intent in the sender's slot, a once-per-id
-- credit in the recipient's slot, then the intent settles back in the sender's slot.
-- Loaded after _prelude.lua and money_lib.lua.

-- What each kind of move changes and how the journals name it.
local MOVES = {
  transfer = {field = 'balance_kop', out = 'transfer_out', into = 'transfer_in',
    refund = 'transfer_refund', unit = 'amount_kop', party = 'party', sender = 'sender',
    recipient = 'recipient'},
  points_gift = {field = 'bonus_points', out = 'points_gift_sent', into = 'points_gift_received',
    refund = 'points_gift_refund', unit = 'points', party = 'side', sender = 'sender',
    recipient = 'recipient'},
  group_topup = {field = 'balance_kop', out = 'group_topup_out', into = 'group_topup_in',
    refund = 'group_topup_refund', unit = 'amount_kop', party = 'party', sender = 'main',
    recipient = 'member'},
}

local function intent_of(intents_key, id)
  local raw = redis.call('HGET', intents_key, id)
  if not raw then return nil end
  return cjson.decode(raw)
end

-- A pending intent is also in the sender's queue (scored by its creation time), so a recovery
-- pass that lost the global index can still find it by scanning the queues. A closed one is in
-- the sender's closed set instead, scored by when it may be forgotten (`expires`).
-- Both keys are made persistent again: they may carry the TTL of save_declined.
local function save_intent(intents_key, queue_key, closed_key, id, intent)
  redis.call('HSET', intents_key, id, cjson.encode(intent))
  redis.call('PERSIST', intents_key)
  redis.call('PERSIST', closed_key)
  if intent.state == 'pending' then
    redis.call('ZADD', queue_key, intent.created_at, id)
    redis.call('ZREM', closed_key, id)
  else
    redis.call('ZREM', queue_key, id)
    redis.call('ZADD', closed_key, intent.expires, id)
  end
end

-- A declined id's record (xfer_hold.lua), a closed intent forgotten like the others. A sender
-- that is no subscriber has no later steps to forget it: its keys, holding nothing but such
-- records, get a Redis TTL of the window (wall time, only to give the memory back, as an id's
-- claim does); any real intent of that number makes them persistent again (save_intent).
local function save_declined(sub_key, intents_key, queue_key, closed_key, id, record, retention)
  local lapsing = {}
  if redis.call('EXISTS', sub_key) == 0 then
    for _, key in ipairs({intents_key, closed_key}) do
      -- -1: the key holds persistent state already; -2: it is new.
      local ttl = redis.call('PTTL', key)
      if ttl ~= -1 then lapsing[key] = ttl end
    end
  end
  save_intent(intents_key, queue_key, closed_key, id, record)
  local window_ms = math.ceil(retention * 1000)
  for key, ttl in pairs(lapsing) do redis.call('PEXPIRE', key, math.max(ttl, window_ms)) end
end

-- Retention (ledger/transfers.py): closed state is forgotten once the ledger clock passes its
-- `expires`, a few entries per step of the same subscriber, so the work stays amortised.
local PRUNE_BATCH = 16

-- A closed intent past its window: a new hold of its id starts afresh.
local function expired(intent, now)
  return intent.state ~= 'pending' and intent.expires ~= nil and tonumber(intent.expires) <= now
end

local function prune_intents(intents_key, closed_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', closed_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do redis.call('HDEL', intents_key, id) end
  if #due > 0 then redis.call('ZREM', closed_key, unpack(due)) end
  return #due
end

-- A recipient keeps each verdict under "<sender> <id>" with the intent's created_at (as its
-- exact text): an id reused after its window is a new intent with a later created_at.
local function verdict_field(sender, id)
  return sender .. ' ' .. id
end

-- The stored verdict for this intent, or the refusal of a step presented too late: an older
-- intent of this field (a driver that slept through the whole window), or one created no later
-- than a verdict already forgotten here (the `floor`). Neither can be a credit still owed:
-- a verdict is forgotten only after its intent closed (see prune_verdicts), and a pending
-- intent whose credit is stored keeps it. Nil when the step is to be taken now.
local LATE = {outcome = 'invalid', values = {field = 'transfer_id', reason = 'expired'}}
local function known_verdict(applied_key, floor_key, field, created_text)
  local created = tonumber(created_text)
  local raw = redis.call('HGET', applied_key, field)
  if raw then
    local verdict = cjson.decode(raw)
    local at = tonumber(verdict.created or '0')
    if at == created then return verdict end
    if created < at then return LATE end
    -- An earlier intent of this id, closed and forgotten by its sender: this one is new.
    return nil
  end
  local floor = redis.call('GET', floor_key)
  if floor and created <= tonumber(floor) then return LATE end
  return nil
end

-- A new verdict is not confirmed yet: an earlier intent's expiry of the same field goes.
local function save_verdict(applied_key, expiry_key, field, created_text, verdict)
  verdict.created = created_text
  redis.call('HSET', applied_key, field, cjson.encode(verdict))
  redis.call('ZREM', expiry_key, field)
  verdict.created = nil
end

-- Verdicts enter the expiry set only once their sender closed the intent (xfer_confirm.lua), so
-- a verdict still needed by a pending intent is never forgotten here. The floor remembers the
-- latest created_at forgotten, for known_verdict.
local function prune_verdicts(applied_key, expiry_key, floor_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  local floor_text = redis.call('GET', floor_key)
  local floor = tonumber(floor_text or '0')
  for _, field in ipairs(due) do
    local raw = redis.call('HGET', applied_key, field)
    if raw then
      local created_text = cjson.decode(raw).created
      if created_text and tonumber(created_text) > floor then
        floor_text, floor = created_text, tonumber(created_text)
      end
      redis.call('HDEL', applied_key, field)
    end
  end
  redis.call('ZREM', expiry_key, unpack(due))
  if floor_text then redis.call('SET', floor_key, floor_text) end
  return #due
end

-- True while another group_add of this main is still between its steps: the main keeps its
-- reservation as a main until the last one settles.
local function other_adds_pending(intents_key, queue_key, id)
  for _, other in ipairs(redis.call('ZRANGE', queue_key, 0, -1)) do
    if other ~= id then
      local intent = intent_of(intents_key, other)
      if intent and intent.kind == 'group_add' and intent.state == 'pending' then return true end
    end
  end
  return false
end

-- The main stops being a main when it has no members and no member is on its way in.
local function release_main_if_idle(m_sub, members_key, intents_key, queue_key, id)
  if redis.call('HLEN', members_key) == 0 and not other_adds_pending(intents_key, queue_key, id) then
    set_group(m_sub, nil)
    return true
  end
  return false
end
