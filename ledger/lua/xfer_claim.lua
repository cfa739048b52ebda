-- Bind a caller-chosen transfer id to its arguments (its fingerprint) until `expires` by the
-- ledger clock; after that the id may name other arguments. The same arguments again extend the
-- binding. The key's TTL (wall time) only gives the memory back (see ledger/transfers.py).
-- KEYS: claim
-- ARGV: fingerprint, now, expires, ttl in seconds
-- Stored as "<expires> <fingerprint>".
local raw = redis.call('GET', KEYS[1])
if raw then
  local space = string.find(raw, ' ', 1, true) or 0
  local until_at = tonumber(string.sub(raw, 1, space - 1))
  local fingerprint = string.sub(raw, space + 1)
  -- A bare fingerprint (no expiry) binds for good.
  if until_at == nil then until_at, fingerprint = math.huge, raw end
  if fingerprint ~= ARGV[1] and until_at > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3] .. ' ' .. ARGV[1], 'EX', ARGV[4])
return 1
