-- Marks escalated the orders still unclaimed at their escalation time.
--
-- KEYS[1]: the county's escalation schedule.
-- ARGV[2]: now; ARGV[3]: the most orders to take off the schedule.
--
-- Returns a list of {sequence, fields of the order}.
local now, limit = ARGV[2], ARGV[3]

local escalated = {}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', KEYS[1], seq)
  local key = order_key(seq)
  upgrade(key, seq)
  local state = redis.call('HGET', key, F.state)
  if is_open(state) and redis.call('HGET', key, F.escalated) ~= '1' then
    redis.call('HSET', key, F.escalated, '1')
    track(seq, 'escalated', state, '', now)
    record(seq, 'escalated', '', now)
    announce('escalated', seq, now)
    table.insert(escalated, {seq, redis.call('HGETALL', key)})
  end
end
return escalated
