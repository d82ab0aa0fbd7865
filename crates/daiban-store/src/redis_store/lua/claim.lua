-- Claims an order for an agent.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number; ARGV[3]: agent; ARGV[4]: the agent's grid;
-- ARGV[5]: now.
--
-- Returns {'ok', fields of the order} or a failure.
local key, seq, agent, agent_grid, now = KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local state, failure = state_of(key, seq)
if failure then
  return failure
end
if state == 'cancelled' then
  return {'err', 'conflict', state}
end
if not is_open(state) then
  if redis.call('HGET', key, F.agent) ~= agent then
    return {'err', 'already_claimed'}
  end
  if state == 'claimed' then
    return {'ok', redis.call('HGETALL', key)}
  end
  -- The agent completed the order itself, so no other agent claimed it.
  return {'err', 'conflict', state}
end

if state == 'offered_to_grid' then
  local grid = redis.call('HGET', key, F.grid)
  local widen_time = redis.call('HGET', key, F.widen_time)
  if not grid or not widen_time then
    return {'err', 'corrupt', 'an order offered to its grid lacks its grid or widen_time'}
  end
  if grid ~= agent_grid and tonumber(now) < tonumber(widen_time) then
    return {'err', 'reserved', grid, widen_time}
  end
end

unschedule(key, seq)
redis.call('HSET', key, F.state, 'claimed', F.agent, agent, F.claim_time, now)
track(seq, 'claimed', state, agent, now)
record(seq, 'claimed', agent, now)
return {'ok', redis.call('HGETALL', key)}
