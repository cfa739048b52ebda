-- Disconnect one option; allowed on a blocked number (nothing is charged).
-- KEYS: sub, opts, journal
-- ARGV: base entry JSON, option id, required kind ('' = any)
local sub_key, opts_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
local option_id, kind = ARGV[2], ARGV[3]
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
local raw = redis.call('HGET', opts_key, option_id)
if not raw then return answer('not_connected', {option_id = option_id}) end
if kind ~= '' and cjson.decode(raw).kind ~= kind then
  return answer('invalid', {field = 'option_id', reason = 'not_a_' .. kind})
end
redis.call('HDEL', opts_key, option_id)
journal(journal_key, ARGV[1], 'option_disconnected', {connected = true}, {connected = false},
  {option_id = option_id})
return answer('ok', {option_id = option_id})
