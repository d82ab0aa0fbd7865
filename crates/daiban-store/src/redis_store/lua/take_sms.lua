-- Leases the queued SMS that are due to the caller.
--
-- KEYS[1]: the county's `smsdue` set.
-- ARGV[2]: now; ARGV[3]: the end of the lease; ARGV[4]: the most to look
-- at.
--
-- Returns a list of {member, record}. An SMS still `sending` when its lease
-- ran out becomes `unknown` instead, since its sender may have handed it to
-- the provider before it stopped.
local now, lease_until, limit = ARGV[2], ARGV[3], ARGV[4]

local taken = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  local seq, field = sms_split(member)
  local key = seq and sms_key(seq)
  local value = key and redis.call('HGET', key, field)
  local r = value and sms_decode(value)
  if not r then
    redis.call('ZREM', KEYS[1], member)
  elseif r.state == 'queued' then
    r.state = 'sending'
    r.attempts = r.attempts + 1
    local record = sms_encode(r)
    redis.call('HSET', key, field, record)
    redis.call('ZADD', KEYS[1], lease_until, member)
    table.insert(taken, {member, record})
  elseif r.state == 'sending' then
    r.state = 'unknown'
    r.err = 'the sender stopped during the send'
    redis.call('HSET', key, field, sms_encode(r))
    redis.call('ZREM', KEYS[1], member)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return taken
