-- Store a new one-time password hash (replacing the old one), subject to the issue rate limit.
-- Issuing clears the failure counter and lifts a login lock.
-- KEYS: sub, pw, pwissue, journal
-- ARGV: base entry JSON, now, window seconds, issue limit, issue id, expires_at, hash fields JSON
local sub_key, pw_key, issues_key, journal_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, window, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if redis.call('HGET', sub_key, 'status') == 'blocked_permanent' then return answer('blocked') end

-- An issue at time t stops counting once now >= t + window.
redis.call('ZREMRANGEBYSCORE', issues_key, '-inf', now - window)
if redis.call('ZCARD', issues_key) >= limit then
  local oldest = redis.call('ZRANGE', issues_key, 0, 0, 'WITHSCORES')
  local retry = math.ceil(tonumber(oldest[2]) + window - now)
  if retry < 1 then retry = 1 end
  return answer('rate_limited', {retry_after_s = retry})
end
redis.call('ZADD', issues_key, now, ARGV[5])

local was_locked = redis.call('HGET', pw_key, 'locked') == '1'
local failures = tonumber(redis.call('HGET', pw_key, 'failures') or '0')
local fields = cjson.decode(ARGV[7])
for field, value in pairs(fields) do redis.call('HSET', pw_key, field, value) end
redis.call('HSET', pw_key, 'otp_issued_at', ARGV[2], 'otp_expires_at', ARGV[6],
  'failures', '0', 'locked', '0')
redis.call('HINCRBY', pw_key, 'version', 1)
journal(journal_key, ARGV[1], 'password_issued',
  {failures = failures, login_locked = was_locked},
  {failures = 0, login_locked = false},
  {expires_at = tonumber(ARGV[6])})
return answer('ok', {expires_at = tonumber(ARGV[6])})
