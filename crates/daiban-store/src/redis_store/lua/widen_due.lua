-- Offers county-wide the orders whose grid phase ended and that no agent
-- has claimed.
--
-- KEYS[1]: the county's index of grids with orders in their grid phase.
-- ARGV[2]: now; ARGV[3]: the most orders to widen.
--
-- Returns a list of {sequence, fields of the order}.
local now, limit = ARGV[2], tonumber(ARGV[3])

local widened = {}
local function widen(seq)
  local key = order_key(seq)
  upgrade(key, seq)
  if redis.call('HGET', key, F.state) ~= 'offered_to_grid' then
    return
  end
  local grid = redis.call('HGET', key, F.grid)
  if grid then
    redis.call('ZREM', open_grid_key(grid), seq)
  end
  redis.call('ZADD', prefix .. 'open:county', seq, seq)
  redis.call('HSET', key, F.state, 'offered_to_county', F.widened, '1')
  -- An order is put on the escalation schedule only when it widens, so
  -- that an order in its grid phase is on one schedule, not two.
  local escalate_at = redis.call('HGET', key, ESCALATE_AT)
  if escalate_at then
    redis.call('ZADD', prefix .. 'escalate', escalate_at, seq)
    redis.call('HDEL', key, ESCALATE_AT)
  end
  track(seq, 'widened', 'offered_to_grid', '', now)
  record(seq, 'widened', '', now)
  announce('widened', seq, now)
  table.insert(widened, {seq, redis.call('HGETALL', key)})
end

-- Orders put in their grid phase before the grid phase schedules.
local old = prefix .. 'widen'
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', old, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', old, seq)
  widen(seq)
end

for _, grid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local buckets = grid_buckets_key(grid)
  for _, bucket in ipairs(redis.call('ZRANGEBYSCORE', buckets, '-inf', now)) do
    local room = limit - #widened
    if room <= 0 then
      break
    end
    local schedule = grid_bucket_key(grid, bucket)
    for _, seq in ipairs(redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, room)) do
      redis.call('ZREM', schedule, seq)
      widen(seq)
    end
    reindex(buckets, bucket, schedule)
  end
  reindex(KEYS[1], grid, buckets)
  if #widened >= limit then
    break
  end
end
return widened
