-- Settles at base points the completed orders whose rating window ended
-- without a rating.
--
-- KEYS[1]: the county's settlement schedule.
-- ARGV[2]: now; ARGV[3]: the most orders to take off the schedule;
-- ARGV[4], ARGV[5]: base points in tenths of a class-1 and a class-2
-- matter; ARGV[6]: the settlement month.
--
-- Returns a list of {sequence, agent, class, points}.
local now, limit = ARGV[2], ARGV[3]
local points_by_class = {['1'] = ARGV[4], ['2'] = ARGV[5]}
local month = ARGV[6]

local settled = {}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', KEYS[1], seq)
  local key = order_key(seq)
  local unrated = redis.call('HEXISTS', key, 'rating') == 0
  if redis.call('HGET', key, 'state') == 'completed' and unrated then
    local agent, class, points = settlement_of(key, points_by_class)
    if agent then
      settle(key, seq, agent, class, points, '', '', month, now)
      table.insert(settled, {seq, agent, class, points})
    else
      redis.log(redis.LOG_WARNING, 'daiban: order ' .. key .. ' completed without an agent or '
        .. 'a matter class; it was taken off the settlement schedule unsettled')
    end
  end
end
return settled
