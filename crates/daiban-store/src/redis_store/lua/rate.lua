-- Rates a completed order and settles it in the same step.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number; ARGV[3]: rating; ARGV[4]: comment; ARGV[5]: now;
-- ARGV[6], ARGV[7]: points in tenths for a class-1 and a class-2 matter
-- under this rating; ARGV[8]: the month counter the rating adds to
-- ('satisfied', 'unsatisfied' or ''); ARGV[9]: the settlement month.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, rating, comment, now = KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local points_by_class = {['1'] = ARGV[6], ['2'] = ARGV[7]}
local tally, month = ARGV[8], ARGV[9]

local state, failure = state_of(key)
if failure then
  return failure
end
if redis.call('HEXISTS', key, 'rating') == 1 then
  return {'err', 'already_rated'}
end
if state ~= 'completed' then
  return {'err', 'conflict', state}
end
local agent, class, points = settlement_of(key, points_by_class)
if not agent then
  return {'err', 'corrupt', 'completed without an agent or a matter class'}
end

redis.call('HSET', key, 'rating', rating, 'rating_comment', comment, 'rate_time', now)
record(seq, 'rated', '', now)
settle(key, seq, agent, class, points, rating, tally, month, now)
return {'ok', redis.call('HGETALL', key)}
