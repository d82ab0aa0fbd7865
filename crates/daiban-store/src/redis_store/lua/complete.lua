-- Completes a claimed order and schedules its settlement.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number. ARGV[3]: agent. ARGV[4]: now. ARGV[5]: when the
-- order settles unless rated first. ARGV[6], ARGV[7]: result text and
-- reference. ARGV[8] to ARGV[11]: code, name, class and department of the
-- matter to set on an order that has none, all '' when none is given.
-- ARGV[12], ARGV[13]: the year and quarter of now in UTC+8, whose counts of
-- the agent's completed orders grow by one.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, agent, now, settle_at = KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local result_text, result_reference = ARGV[6], ARGV[7]
local matter_code, matter_name, matter_class, matter_department = ARGV[8], ARGV[9], ARGV[10], ARGV[11]

local state, failure = state_of(key, seq)
if failure then
  return failure
end
if state ~= 'claimed' then
  return {'err', 'conflict', state}
end
if redis.call('HGET', key, F.agent) ~= agent then
  return {'err', 'not_holder'}
end
local has_matter = redis.call('HEXISTS', key, F.matter_code) == 1
if not has_matter and matter_code == '' then
  return {'err', 'no_matter'}
end

if not has_matter then
  redis.call('HSET', key, F.matter_code, matter_code, F.matter_name, matter_name,
    F.matter_class, matter_class, F.matter_department, matter_department)
end
redis.call('HSET', key, F.state, 'completed', F.complete_time, now,
  F.result_text, result_text, F.result_reference, result_reference)
redis.call('ZADD', prefix .. 'settle', settle_at, seq)
track(seq, 'completed', state, agent, now)
record(seq, 'completed', agent, now)
redis.call('ZINCRBY', prefix .. 'completed:' .. ARGV[12], 1, agent)
redis.call('ZINCRBY', prefix .. 'completed:' .. ARGV[13], 1, agent)
return {'ok', redis.call('HGETALL', key)}
