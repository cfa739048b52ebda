-- Step 2 of a cross-slot move, in the recipient's slot: credit once per intent. The verdict (a
-- credit or a refusal) is kept per sender and id, so a replay answers it again and never credits
-- twice; a few expired verdicts of this recipient are forgotten on the way (xfer_lib.lua).
-- KEYS: recipient sub, recipient journal, recipient's verdicts, their expiry set, their floor
-- ARGV: recipient base entry JSON, id, kind, sender, amount, balance ceiling, the intent's
--       created_at, now
local r_sub, r_journal, applied, expiry, floor = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, kind, sender = ARGV[2], ARGV[3], ARGV[4]
local amount, ceiling = tonumber(ARGV[5]), tonumber(ARGV[6])
local created, now = ARGV[7], tonumber(ARGV[8])
local move = MOVES[kind]
local field = verdict_field(sender, id)

prune_verdicts(applied, expiry, floor, now, PRUNE_BATCH)
local seen = known_verdict(applied, floor, field, created)
if seen then return answer('ok', seen) end

local verdict
if redis.call('EXISTS', r_sub) == 0 then
  verdict = {outcome = 'unknown_subscriber', values = {[move.party] = move.recipient}}
elseif redis.call('HGET', r_sub, 'status') ~= 'active' then
  verdict = {outcome = 'recipient_blocked'}
elseif kind == 'group_topup' and (group_of(r_sub) or {}).main ~= sender then
  verdict = {outcome = 'not_member'}
else
  local before = tonumber(redis.call('HGET', r_sub, move.field))
  if before + amount > ceiling then
    verdict = {outcome = 'invalid', values = {field = move.unit, reason = 'balance_overflow'}}
  else
    local after = redis.call('HINCRBY', r_sub, move.field, amount)
    local extra = {[move.unit] = amount, transfer_id = id}
    if kind == 'transfer' then extra.sender = sender
    elseif kind == 'group_topup' then extra.main = sender
    else extra.counterparty = sender end
    journal(r_journal, ARGV[1], move.into, {[move.field] = before}, {[move.field] = after}, extra)
    verdict = {outcome = 'ok', values = {after = after}}
  end
end
save_verdict(applied, expiry, field, created, verdict)
return answer('ok', verdict)
