-- Move money from the main number to an active member of its group.
-- The two subscribers' keys carry different hash tags (see money_transfer.lua on Cluster).
-- KEYS: main sub, main journal, main's member set, member sub, member journal
-- ARGV: main base entry JSON, member base entry JSON, amount, now, balance ceiling
local m_sub, m_journal, members_key, x_sub, x_journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local amount, now, ceiling = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', m_sub) == 0 then return answer('unknown_subscriber', {party = 'main'}) end
if redis.call('EXISTS', x_sub) == 0 then return answer('unknown_subscriber', {party = 'member'}) end
if redis.call('HGET', m_sub, 'status') ~= 'active' then return answer('blocked') end

local main, member = redis.call('HGET', m_sub, 'msisdn'), redis.call('HGET', x_sub, 'msisdn')
local member_group = group_of(x_sub)
local active_at = redis.call('HGET', members_key, member)
if not active_at or not member_group or member_group.main ~= main then
  return answer('not_member')
end
if now < tonumber(active_at) then return answer('pending', {active_at = active_at}) end
if redis.call('HGET', x_sub, 'status') ~= 'active' then return answer('recipient_blocked') end

local m_before, x_before = balance_of(m_sub), balance_of(x_sub)
if m_before < amount then
  return answer('insufficient_funds', {balance_kop = m_before, needed_kop = amount})
end
if x_before + amount > ceiling then
  return answer('invalid', {field = 'amount_kop', reason = 'balance_overflow'})
end
local m_after = redis.call('HINCRBY', m_sub, 'balance_kop', -amount)
local x_after = redis.call('HINCRBY', x_sub, 'balance_kop', amount)
journal(m_journal, ARGV[1], 'group_topup_out', {balance_kop = m_before}, {balance_kop = m_after},
  {amount_kop = amount, member = member})
journal(x_journal, ARGV[2], 'group_topup_in', {balance_kop = x_before}, {balance_kop = x_after},
  {amount_kop = amount, main = main})
return answer('ok', {balance_kop = m_after, member_balance_kop = x_after})
