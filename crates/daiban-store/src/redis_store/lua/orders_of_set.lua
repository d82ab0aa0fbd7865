-- Reads the orders that a sorted set of sequence numbers lists, highest
-- sequence number first: an index of the console by phone or agent.
--
-- KEYS[1]: the index.
-- ARGV[2]: the most orders to return.
--
-- Returns a list of {sequence, fields of the order}.
local limit = tonumber(ARGV[2])

local orders = {}
for _, seq in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, limit - 1)) do
  local fields = redis.call('HGETALL', order_key(seq))
  if #fields > 0 then
    table.insert(orders, {seq, fields})
  end
end
return orders
