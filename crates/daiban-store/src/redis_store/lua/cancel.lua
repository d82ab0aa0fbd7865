-- Cancels an order that is offered or claimed.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number; ARGV[3]: reason; ARGV[4]: now.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, reason, now = KEYS[1], ARGV[2], ARGV[3], ARGV[4]

local state, failure = state_of(key, seq)
if failure then
  return failure
end
if not is_open(state) and state ~= 'claimed' then
  return {'err', 'conflict', state}
end

unschedule(key, seq)
redis.call('HSET', key, F.state, 'cancelled', F.cancel_time, now)
if reason ~= '' then
  redis.call('HSET', key, F.cancel_reason, reason)
end
track(seq, 'cancelled', state, '', now)
record(seq, 'cancelled', '', now)
return {'ok', redis.call('HGETALL', key)}
