-- Reads a quarter's totals in one step: the county's month totals and
-- those of every agent with a settlement booked in the quarter.
--
-- KEYS[1]: the quarter's set of agents.
-- ARGV[2] to ARGV[4]: the quarter's months.
--
-- Returns {county counters, {agent, counters}, ...}, where counters are
-- the 15 values of class1, class2, satisfied, unsatisfied and points for
-- each month in turn, nil where a month has none.
local fields = {}
for _, month in ipairs({ARGV[2], ARGV[3], ARGV[4]}) do
  for _, counter in ipairs({'class1', 'class2', 'satisfied', 'unsatisfied', 'points'}) do
    table.insert(fields, month .. ':' .. counter)
  end
end

local result = {redis.call('HMGET', prefix .. 'county_points', unpack(fields))}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  table.insert(result, {agent, redis.call('HMGET', prefix .. 'points:' .. agent, unpack(fields))})
end
return result
