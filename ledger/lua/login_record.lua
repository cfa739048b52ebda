-- Record the result of a password check made by the caller on a snapshot of the pw hash.
-- The snapshot's version must still be current: a newer password or a concurrent use of the
-- same one-time password makes the caller check again ('retry').
-- KEYS: sub, pw, journal
-- ARGV: base entry JSON, expected version, verdict ('otp' | 'permanent' | 'bad'), max failures
local sub_key, pw_key, journal_key = KEYS[1], KEYS[2], KEYS[3]
local verdict, max_failures = ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', sub_key) == 0 then return answer('unknown_subscriber') end
if (redis.call('HGET', pw_key, 'version') or '0') ~= ARGV[2] then return answer('retry') end
if redis.call('HGET', pw_key, 'locked') == '1' then return answer('locked') end

local failures = tonumber(redis.call('HGET', pw_key, 'failures') or '0')
if verdict == 'bad' then
  local now_failures = failures + 1
  local locks = now_failures >= max_failures
  redis.call('HSET', pw_key, 'failures', now_failures)
  journal(journal_key, ARGV[1], 'login_failed',
    {failures = failures}, {failures = now_failures})
  if locks then
    redis.call('HSET', pw_key, 'locked', '1')
    -- A second entry of the same change needs its own id.
    local lock_id = cjson.decode(ARGV[1]).id .. '-lock'
    journal(journal_key, ARGV[1], 'login_locked',
      {login_locked = false}, {login_locked = true}, {id = lock_id})
  end
  local left = max_failures - now_failures
  if left < 0 then left = 0 end
  return answer('bad_password', {attempts_left = left})
end

if verdict == 'otp' then
  redis.call('HDEL', pw_key, 'otp_salt', 'otp_hash', 'otp_n', 'otp_r', 'otp_p',
    'otp_issued_at', 'otp_expires_at')
  redis.call('HINCRBY', pw_key, 'version', 1)
end
redis.call('HSET', pw_key, 'failures', '0')
journal(journal_key, ARGV[1], 'login_succeeded', {failures = failures}, {failures = 0},
  {kind = verdict})
return answer('ok', {kind = verdict})
