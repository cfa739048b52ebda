#!lua flags=no-writes
-- A subscriber read in one call (never a write: a full store still answers it).
-- KEYS[1] the subscriber hash, KEYS[2] the password hash, then more hashes of the same subscriber
-- (one hash tag, one slot); ARGV[i] names the field of KEYS[i + 2] to read, '' the whole hash.
-- Answers {subscriber fields (flat), the password's locked flag, one value per further key}.
local out = {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], 'locked')}
for i = 3, #KEYS do
  local field = ARGV[i - 2]
  if field == '' then
    out[i] = redis.call('HGETALL', KEYS[i])
  else
    out[i] = redis.call('HGET', KEYS[i], field)
  end
end
return out
