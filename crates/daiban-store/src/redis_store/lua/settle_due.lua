-- Settles the completed orders whose rating window ended and that are not
-- settled yet: unrated ones at base points, and rated ones whose `rated`
-- event was never handled at their rating.
--
-- KEYS[1]: the county's settlement schedule.
-- ARGV[2]: now, which is also the settlement time. ARGV[3]: the most
-- orders to take off the schedule. ARGV[4]: the number n of rating rows
-- that follow, then n rows of four: the rating ('' for none), the month
-- counter it adds to ('satisfied', 'unsatisfied' or ''), and its points in
-- tenths for a class-1 and a class-2 matter. After them: quarter, month
-- pairs to book in (see ledger.lua).
--
-- Returns a list of {sequence, agent, class, rating, points, quarter,
-- month}.
local now, limit, rows = ARGV[2], ARGV[3], tonumber(ARGV[4])
local rules = {}
for row = 0, rows - 1 do
  local at = 5 + row * 4
  rules[ARGV[at]] = {tally = ARGV[at + 1], ['1'] = ARGV[at + 2], ['2'] = ARGV[at + 3]}
end
local periods = {unpack(ARGV, 5 + rows * 4)}

local quarter, month = open_period(periods)
if not quarter then
  return {'err', 'corrupt', 'every quarter up to the next one is closed'}
end

local settled = {}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', KEYS[1], seq)
  local key = order_key(seq)
  upgrade(key, seq)
  if redis.call('HGET', key, F.state) == 'completed' and not is_settled(seq) then
    local fields = redis.call('HMGET', key, F.agent, F.matter_class, F.rating)
    local agent, class, rating = fields[1], fields[2], fields[3] or ''
    local rule = rules[rating]
    if agent and rule and rule[class] then
      settle(key, seq, agent, class, rating, rule.tally, rule[class], now, quarter, month)
      table.insert(settled, {seq, agent, class, rating, rule[class], quarter, month})
    else
      redis.log(redis.LOG_WARNING, 'daiban: order ' .. key .. ' completed without an agent, '
        .. 'a known matter class or a known rating; it was taken off the settlement '
        .. 'schedule unsettled')
    end
  end
end
return {'ok', settled}
