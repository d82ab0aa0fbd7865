-- Gives a claimed order back to the county.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number; ARGV[3]: agent; ARGV[4]: now; ARGV[5]: when the
-- order escalates if it is still unclaimed and has not escalated before.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, agent, now, escalate_at = KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

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

-- `released_by` is a comma-separated list; agent ids contain no commas.
local released_by = redis.call('HGET', key, F.released_by) or ''
local listed = false
for released in string.gmatch(released_by, '[^,]+') do
  if released == agent then
    listed = true
  end
end
if not listed then
  if released_by == '' then
    released_by = agent
  else
    released_by = released_by .. ',' .. agent
  end
end

redis.call('HSET', key, F.state, 'offered_to_county', F.widened, '1', F.released_by, released_by)
redis.call('HDEL', key, F.agent, F.claim_time)
redis.call('ZADD', prefix .. 'open:county', seq, seq)
if redis.call('HGET', key, F.escalated) ~= '1' then
  redis.call('ZADD', prefix .. 'escalate', escalate_at, seq)
end
track(seq, 'released', state, agent, now)
record(seq, 'released', agent, now)
announce('released', seq, now)
return {'ok', redis.call('HGETALL', key)}
