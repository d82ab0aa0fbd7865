-- Helpers of the scripts that book settlements into the points ledger;
-- they follow common.lua.
--
-- An order is booked once: the hash `settled` maps each settled order's
-- sequence number to its ledger entry, and every booking checks it first.
-- The periods a settlement may land in come from the Rust side as a flat
-- list of quarter, month pairs, its own period first; the first pair whose
-- quarter is not in the hash `closed` wins.

-- Returns the quarter and month of the first open period of `periods`, or
-- nil when every one is closed.
local function open_period(periods)
  for i = 1, #periods - 1, 2 do
    if redis.call('HEXISTS', prefix .. 'closed', periods[i]) == 0 then
      return periods[i], periods[i + 1]
    end
  end
  return nil, nil
end

local function is_settled(seq)
  return redis.call('HEXISTS', prefix .. 'settled', seq) == 1
end

-- Adds one settlement to the month totals hash `totals`. Every field of
-- the month is written, even with 0, so its five counters are always
-- present together.
local function add_to_month(totals, month, class, tally, points)
  local function count(field, yes)
    redis.call('HINCRBY', totals, month .. ':' .. field, yes and 1 or 0)
  end
  count('class1', class == '1')
  count('class2', class == '2')
  count('satisfied', tally == 'satisfied')
  count('unsatisfied', tally == 'unsatisfied')
  redis.call('HINCRBY', totals, month .. ':points', points)
end

-- Books the settlement of the completed order at `key`: its state and
-- points, a ledger entry, the agent's and the county's month totals, the
-- quarter's set of agents and a `settled` event. `rating` is '' for an
-- order settled without one, and `tally` is 'satisfied', 'unsatisfied' or
-- '' for the month counter that the rating adds to.
local function settle(key, seq, agent, class, rating, tally, points, settle_time, quarter, month)
  redis.call('HSET', key, F.state, 'settled', F.points, points, F.settle_time, settle_time)
  redis.call('ZREM', prefix .. 'settle', seq)
  add_to_month(prefix .. 'points:' .. agent, month, class, tally, points)
  add_to_month(prefix .. 'county_points', month, class, tally, points)
  redis.call('SADD', prefix .. 'quarter:' .. quarter .. ':agents', agent)
  local entry = redis.call('XADD', prefix .. 'ledger', '*', 'order', seq, 'agent', agent,
    'class', class, 'rating', rating, 'points', points, 'time', settle_time,
    'month', month, 'quarter', quarter)
  redis.call('HSET', prefix .. 'settled', seq, entry)
  track(seq, 'settled', 'completed', agent, settle_time)
  record(seq, 'settled', agent, settle_time)
end
