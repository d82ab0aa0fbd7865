-- Helpers that every script of the Redis store starts with.
--
-- ARGV[1] of every script is the county's key prefix, such as
-- `daiban:{431127}:`. KEYS[1] is the script's main key, and the script
-- derives the other keys it touches from the prefix, so they all carry the
-- county's hash tag. Times are integer milliseconds since the epoch, passed
-- as strings and stored as given, so no script formats a number.
--
-- The failures that the scripts check for are returned as values instead
-- of raised, so the Rust side can map them: {'err', 'not_found'}, {'err', 'already_claimed'},
-- {'err', 'reserved', grid, until}, {'err', 'conflict', state},
-- {'err', 'already_rated'}, {'err', 'not_holder'}, {'err', 'no_matter'} and
-- {'err', 'corrupt', reason}. Every check runs before the first write,
-- because Redis does not roll back the writes of a script that fails.

local prefix = ARGV[1]

-- Entries kept in a county's event stream; XADD trims older ones in whole
-- stream nodes, so a few more may remain.
local EVENTS_MAXLEN = '100000'

local function order_key(seq)
  return prefix .. 'order:' .. seq
end

local function open_grid_key(grid)
  return prefix .. 'open:grid:' .. grid
end

local function is_open(state)
  return state == 'offered_to_grid' or state == 'offered_to_county'
end

-- Appends an event to the county's stream. `agent` is '' when no agent
-- acted.
local function record(seq, kind, agent, time)
  redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'order', seq, 'kind', kind, 'agent', agent, 'time', time)
end

-- Owes the agents (or the duty desk) a notification of `kind` about the
-- order, due at `time`; the dispatcher takes it from the outbox and deletes
-- it once sent.
local function announce(kind, seq, time)
  redis.call('ZADD', prefix .. 'outbox', time, kind .. ':' .. seq)
end

-- Returns the state of the order at `key`, or nil and the failure to return
-- when the order does not exist or has no state.
local function state_of(key)
  local state = redis.call('HGET', key, 'state')
  if state then
    return state, nil
  end
  if redis.call('EXISTS', key) == 1 then
    return nil, {'err', 'corrupt', 'missing field state'}
  end
  return nil, {'err', 'not_found'}
end

-- Takes an order off the open sets and the widening and escalation
-- schedules, once no agent can claim it any more.
local function unschedule(key, seq)
  local grid = redis.call('HGET', key, 'grid')
  if grid then
    redis.call('ZREM', open_grid_key(grid), seq)
  end
  redis.call('ZREM', prefix .. 'open:county', seq)
  redis.call('ZREM', prefix .. 'widen', seq)
  redis.call('ZREM', prefix .. 'escalate', seq)
end

