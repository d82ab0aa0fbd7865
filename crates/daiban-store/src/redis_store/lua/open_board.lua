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
-- Calls `visit` with each member of the index `key` in the order of
-- their scores, the earliest ends of what they stand for, until one is
-- later than the last of `limit` found: no later member has a sooner end.
local function each_sooner(key, visit)
  local members = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #members - 1, 2 do
    if #soonest == limit and tonumber(members[i + 1]) > soonest[limit][1] then
      return
    end
    visit(members[i])
  end
end
each_sooner(KEYS[1], function(grid)
  each_sooner(grid_buckets_key(grid), function(bucket)
    consider(redis.call('ZRANGE', grid_bucket_key(grid, bucket), 0, limit - 1, 'WITHSCORES'))
  end)
end)

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
