-- Leases the announcements that are due to the caller.
--
-- KEYS[1]: the county's outbox, members `<kind>:<sequence>` scored by the
-- time from which they may be taken.
-- ARGV[2]: now; ARGV[3]: the end of the lease; ARGV[4]: the most to take.
--
-- Returns a list of {kind, sequence, fields of the order}. An announcement
-- whose order no longer exists is dropped.
local now, lease_until, limit = ARGV[2], ARGV[3], ARGV[4]

local taken = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  local kind, seq = string.match(member, '^(%a+):(%d+)$')
  local fields = seq and redis.call('HGETALL', order_key(seq)) or {}
  if #fields > 0 then
    redis.call('ZADD', KEYS[1], lease_until, member)
    table.insert(taken, {kind, seq, fields})
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return taken
