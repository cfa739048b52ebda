-- Helpers shared by the catalogue scripts (prepended after _prelude.lua by ledger/offers.py).

local function without_item(list, item)
  local kept = {}
  for _, value in ipairs(list) do
    if value ~= item then table.insert(kept, value) end
  end
  return kept
end

-- Add or remove one service id; returns the lists before and after.
local function set_service_flag(sub_key, service, on)
  local before = services_of(sub_key)
  local after = with_item(before, service, on)
  redis.call('HSET', sub_key, 'services', encode_list(after))
  return before, after
end

-- Remainders belong to one tariff: a state kept for another tariff (or none) means the full
-- packages of the current one.
local function current_packages(pkg_key, tariff, tariff_packages)
  local state = hash_to_table(redis.call('HGETALL', pkg_key))
  if state.tariff == tariff then
    return {minutes = tonumber(state.minutes), sms = tonumber(state.sms), mb = tonumber(state.mb)}
  end
  local full = tariff_packages[tariff] or {}
  return {minutes = full.minutes or 0, sms = full.sms or 0, mb = full.mb or 0}
end

local function store_packages(pkg_key, tariff, packages)
  redis.call('HSET', pkg_key, 'tariff', tariff, 'minutes', packages.minutes,
    'sms', packages.sms, 'mb', packages.mb)
end

-- Why a charge of `amount` cannot happen, or nil: a number that is not active is never charged.
local function charge_refusal(sub_key, amount)
  if redis.call('HGET', sub_key, 'status') ~= 'active' then return 'blocked' end
  if tonumber(redis.call('HGET', sub_key, 'balance_kop')) < amount then
    return 'insufficient_funds'
  end
  return nil
end

local function debit(sub_key, amount)
  local before = tonumber(redis.call('HGET', sub_key, 'balance_kop'))
  if amount == 0 then return before, before end
  local after = redis.call('HINCRBY', sub_key, 'balance_kop', -amount)
  return before, after
end

-- Spend earns floor((remainder + amount) / rate) points; the rest waits for the next spend, so
-- three spends of 200 kopecks at 500 per point earn one point. Journals its own entry.
local function accrue(sub_key, pts_key, journal_key, base_json, channel, amount, rate)
  if amount <= 0 then return 0 end
  local rem_field = channel .. '_remainder_kop'
  local rem_before = tonumber(redis.call('HGET', pts_key, rem_field) or '0')
  local total = rem_before + amount
  local points = math.floor(total / rate)
  local rem_after = total - points * rate
  redis.call('HSET', pts_key, rem_field, rem_after)
  redis.call('HINCRBY', pts_key, channel .. '_spent_kop', amount)
  local points_before = tonumber(redis.call('HGET', sub_key, 'bonus_points'))
  local points_after = points_before
  if points > 0 then points_after = redis.call('HINCRBY', sub_key, 'bonus_points', points) end
  journal(journal_key, base_json, 'points_accrued',
    {bonus_points = points_before, remainder_kop = rem_before},
    {bonus_points = points_after, remainder_kop = rem_after},
    {id = cjson.decode(base_json).id .. '-points', channel = channel, spend_kop = amount,
     kop_per_point = rate, points = points})
  return points
end
