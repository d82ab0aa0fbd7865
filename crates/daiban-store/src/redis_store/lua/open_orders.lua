-- Lists the orders an agent of one grid may claim, oldest first. Reads
-- only.
--
-- KEYS[1]: the open set of the agent's grid.
-- ARGV[2]: now; ARGV[3]: the most orders to return.
--
-- Returns a list of {sequence, fields of the order}.
local now, limit = ARGV[2], tonumber(ARGV[3])

local candidates, seen = {}, {}
local function add(sequences)
  for _, seq in ipairs(sequences) do
    if not seen[seq] then
      seen[seq] = true
      table.insert(candidates, tonumber(seq))
    end
  end
end
-- The open sets are ordered by sequence number, so the oldest `limit` of
-- each are enough.
add(redis.call('ZRANGE', KEYS[1], 0, limit - 1))
add(redis.call('ZRANGE', prefix .. 'open:county', 0, limit - 1))
-- Orders of other grids whose grid phase ended but that widen_due has not
-- widened yet. NOTE: this reads the whole overdue part of the widening
-- schedule, which stays short only while widen_due keeps up.
add(redis.call('ZRANGEBYSCORE', prefix .. 'widen', '-inf', now))
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
