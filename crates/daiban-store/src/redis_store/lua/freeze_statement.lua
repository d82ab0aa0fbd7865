-- Stores the frozen statement of a closed quarter unless one is stored,
-- and returns the stored one.
--
-- KEYS[1]: the county's hash of frozen statements, by quarter.
-- ARGV[2]: the quarter; ARGV[3]: the statement, as JSON.
--
-- Returns {'ok', statement} or {'err', 'corrupt', reason}.
local quarter, statement = ARGV[2], ARGV[3]
if redis.call('HEXISTS', prefix .. 'closed', quarter) == 0 then
  return {'err', 'corrupt', 'a statement was frozen for a quarter that is not closed'}
end
redis.call('HSETNX', KEYS[1], quarter, statement)
return {'ok', redis.call('HGET', KEYS[1], quarter)}
