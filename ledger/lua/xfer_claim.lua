-- Bind a caller-chosen transfer id to its arguments (its fingerprint) until `expires` by the
-- ledger clock; after that the id may name other arguments. The same arguments again extend the
-- binding. The key's TTL (wall time) only gives the memory back (see ledger/transfers.py).
-- KEYS: claim
-- ARGV: fingerprint, now, expires, ttl in seconds
-- Stored as "<expires> <fingerprint>", then "\n<verdict JSON>" once the transfer was declined
-- (xfer_decline.lua). Returns 0 when the id names other arguments, the stored verdict when it
-- was declined within its window, else 1.
local raw = redis.call('GET', KEYS[1])
local verdict = nil
if raw then
  local space = string.find(raw, ' ', 1, true) or 0
  local until_at = tonumber(string.sub(raw, 1, space - 1))
  local fingerprint = string.sub(raw, space + 1)
  -- A bare fingerprint (no expiry) binds for good.
  if until_at == nil then until_at, fingerprint = math.huge, raw end
  local newline = string.find(fingerprint, '\n', 1, true)
  if newline then
    verdict = string.sub(fingerprint, newline + 1)
    fingerprint = string.sub(fingerprint, 1, newline - 1)
  end
  local live = until_at > tonumber(ARGV[2])
  if fingerprint ~= ARGV[1] and live then return 0 end
  if not live or fingerprint ~= ARGV[1] then verdict = nil end
end
local value = ARGV[3] .. ' ' .. ARGV[1]
if verdict then value = value .. '\n' .. verdict end
redis.call('SET', KEYS[1], value, 'EX', ARGV[4])
return verdict or 1
