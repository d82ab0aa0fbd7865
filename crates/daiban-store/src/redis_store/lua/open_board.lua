-- Lists the county's open orders for the console: up to a limit in their
-- grid phase, soonest widening first, then up to the limit offered
-- county-wide, oldest first.
--
-- KEYS[1]: the county's widening schedule.
-- ARGV[2]: the most orders of each kind.
--
-- Returns a list of {sequence, fields of the order}.
local limit = tonumber(ARGV[2])

local board = {}
local function add(seqs)
  for _, seq in ipairs(seqs) do
    local key = order_key(seq)
    if is_open(read_field(key, 'state')) then
      table.insert(board, {seq, redis.call('HGETALL', key)})
    end
  end
end
add(redis.call('ZRANGE', KEYS[1], 0, limit - 1))
add(redis.call('ZRANGE', prefix .. 'open:county', 0, limit - 1))
return board
