-- Lists the county's open orders for the console: up to a limit in their
-- grid phase, soonest widening first, then up to the limit offered
-- county-wide, oldest first.
--
-- KEYS[1]: the county's index of grids with orders in their grid phase.
-- ARGV[2]: the most orders of each kind.
--
-- Returns a list of {sequence, fields of the order}.
local limit = tonumber(ARGV[2])

-- {end of the grid phase, sequence} of the soonest `limit` found so far.
local soonest = {}
local function consider(members_with_scores)
  for i = 1, #members_with_scores - 1, 2 do
    table.insert(soonest, {tonumber(members_with_scores[i + 1]), members_with_scores[i]})
  end
  table.sort(soonest, function(a, b) return a[1] < b[1] end)
  for i = #soonest, limit + 1, -1 do
    soonest[i] = nil
  end
end

consider(redis.call('ZRANGE', prefix .. 'widen', 0, limit - 1, 'WITHSCORES'))
-- A grid's index score is its earliest end, so once it is later than the
-- last of `limit` found, no later grid has a sooner one.
local grids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #grids - 1, 2 do
  if #soonest == limit and tonumber(grids[i + 1]) > soonest[limit][1] then
    break
  end
  consider(redis.call('ZRANGE', grid_phase_key(grids[i]), 0, limit - 1, 'WITHSCORES'))
end

local board = {}
local function add(seqs)
  for _, seq in ipairs(seqs) do
    local key = order_key(seq)
    if is_open(read_field(key, 'state')) then
      table.insert(board, {seq, redis.call('HGETALL', key)})
    end
  end
end
local in_grid_phase = {}
for _, entry in ipairs(soonest) do
  table.insert(in_grid_phase, entry[2])
end
add(in_grid_phase)
add(redis.call('ZRANGE', prefix .. 'open:county', 0, limit - 1))
return board
