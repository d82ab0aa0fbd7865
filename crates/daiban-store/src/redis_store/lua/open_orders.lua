-- Lists the orders an agent of one grid may claim, oldest first. Reads
-- only.
--
-- KEYS[1]: the index of the buckets of the agent's grid's grid phase
-- schedule.
-- ARGV[2]: now; ARGV[3]: the most orders to return; ARGV[4]: the agent's
-- grid.
--
-- Returns a list of {sequence, fields of the order}.
local now, limit, grid = ARGV[2], tonumber(ARGV[3]), ARGV[4]

local candidates, seen = {}, {}
local function add(sequences)
  for _, seq in ipairs(sequences) do
    if not seen[seq] then
      seen[seq] = true
      table.insert(candidates, tonumber(seq))
    end
  end
end
-- A bucket of the grid's schedule contains consecutive sequence numbers,
-- so the first buckets in order, until `limit` orders, contain the oldest.
local buckets = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(buckets, function(a, b) return tonumber(a) < tonumber(b) end)
local in_grid = 0
for _, bucket in ipairs(buckets) do
  if in_grid >= limit then
    break
  end
  local seqs = redis.call('ZRANGE', grid_bucket_key(grid, bucket), 0, -1)
  add(seqs)
  in_grid = in_grid + #seqs
end
-- The other sets are ordered by sequence number, so their first `limit`
-- are enough.
add(redis.call('ZRANGE', open_grid_key(grid), 0, limit - 1))
add(redis.call('ZRANGE', prefix .. 'open:county', 0, limit - 1))
-- Orders of other grids whose grid phase ended but that widen_due has not
-- widened yet. NOTE: this reads the whole overdue part of the schedules,
-- which stays short only while widen_due keeps up.
add(redis.call('ZRANGEBYSCORE', prefix .. 'widen', '-inf', now))
for _, other in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'grid_phases', '-inf', now)) do
  for _, bucket in ipairs(redis.call('ZRANGEBYSCORE', grid_buckets_key(other), '-inf', now)) do
    add(redis.call('ZRANGEBYSCORE', grid_bucket_key(other, bucket), '-inf', now))
  end
end
table.sort(candidates)

local orders = {}
for _, seq in ipairs(candidates) do
  if #orders == limit then
    break
  end
  local key = order_key(seq)
  if is_open(read_field(key, 'state')) then
    table.insert(orders, {tostring(seq), redis.call('HGETALL', key)})
  end
end
return orders
