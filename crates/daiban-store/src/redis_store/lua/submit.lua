-- Creates an order, unless an order of the county already has its request
-- id.
--
-- KEYS[1]: the new order's hash.
-- ARGV[2]: sequence number. ARGV[3]: request id or ''. ARGV[4]: end of the
-- grid phase, or '' for an order offered county-wide at once. ARGV[5]: grid
-- or ''. ARGV[6]: escalation time. ARGV[7]: create time. ARGV[8] on: field,
-- value pairs of the order's hash.
--
-- Returns {'created'} or {'existing', sequence, fields of the order}.
local key, seq, request_id = KEYS[1], ARGV[2], ARGV[3]
local grid_phase_until, grid, escalate_at, create_time = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if request_id ~= '' then
  local request_key = prefix .. 'request:' .. request_id
  local existing = redis.call('GET', request_key)
  if existing then
    return {'existing', existing, redis.call('HGETALL', order_key(existing))}
  end
end
if redis.call('EXISTS', key) == 1 then
  return {'err', 'corrupt', 'sequence number ' .. seq .. ' is already used by another order'}
end

if request_id ~= '' then
  redis.call('SET', prefix .. 'request:' .. request_id, seq)
end
redis.call('HSET', key, unpack(ARGV, 8))
if grid_phase_until ~= '' then
  redis.call('ZADD', prefix .. 'widen', grid_phase_until, seq)
  redis.call('ZADD', open_grid_key(grid), seq, seq)
else
  redis.call('ZADD', prefix .. 'open:county', seq, seq)
end
redis.call('ZADD', prefix .. 'escalate', escalate_at, seq)
track(seq, 'submitted', '', '', create_time)
record(seq, 'submitted', '', create_time)
announce('submitted', seq, create_time)
return {'created'}
