-- Records the rating of a completed order. The order settles later, from
-- the `rated` event or at the end of its rating window, so it stays on the
-- settlement schedule.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number; ARGV[3]: rating; ARGV[4]: comment; ARGV[5]: now.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, rating, comment, now = KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local state, failure = state_of(key, seq)
if failure then
  return failure
end
if redis.call('HEXISTS', key, F.rating) == 1 then
  return {'err', 'already_rated'}
end
if state ~= 'completed' then
  return {'err', 'conflict', state}
end

redis.call('HSET', key, F.rating, rating, F.rate_time, now)
if comment ~= '' then
  redis.call('HSET', key, F.rating_comment, comment)
end
track(seq, 'rated', state, '', now)
record(seq, 'rated', '', now)
return {'ok', redis.call('HGETALL', key)}
