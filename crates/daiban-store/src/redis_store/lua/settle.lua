-- Settles a completed and rated order at its rating, once.
--
-- KEYS[1]: the order's hash.
-- ARGV[2]: sequence number. ARGV[3] to ARGV[5]: the agent, matter class
-- and rating that the Rust side read from the order. ARGV[6]: points in
-- tenths. ARGV[7]: the month counter the rating adds to ('satisfied',
-- 'unsatisfied' or ''). ARGV[8]: the settlement time, which is the rating
-- time. ARGV[9] on: quarter, month pairs to book in (see ledger.lua).
--
-- Returns {'ok', 'settled', quarter, month}, {'ok', 'already'} when the
-- order is settled already, or a failure.
local key, seq = KEYS[1], ARGV[2]
local agent, class, rating = ARGV[3], ARGV[4], ARGV[5]
local points, tally, settle_time = ARGV[6], ARGV[7], ARGV[8]
local periods = {unpack(ARGV, 9)}

local state, failure = state_of(key, seq)
if failure then
  return failure
end
if state == 'settled' or is_settled(seq) then
  return {'ok', 'already'}
end
if state ~= 'completed' then
  return {'err', 'conflict', state}
end
local stored = redis.call('HMGET', key, F.agent, F.matter_class, F.rating)
if stored[1] ~= agent or stored[2] ~= class or stored[3] ~= rating then
  return {'err', 'corrupt', 'agent, matter class or rating changed while settling'}
end
local quarter, month = open_period(periods)
if not quarter then
  return {'err', 'corrupt', 'every quarter up to the next one is closed'}
end

settle(key, seq, agent, class, rating, tally, points, settle_time, quarter, month)
return {'ok', 'settled', quarter, month}
