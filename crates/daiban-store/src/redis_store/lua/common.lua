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

-- Short names of the fields of an order's hash, by long name. Every order
-- stores its field names again, so they are short, and `order_hash.rs`
-- keeps the same table. `h1`, `h2`, ... are the order's changes after its
-- submission, whose time is the create time, and `hn` is their number.
-- `ea` is the escalation time of an order in its grid phase.
local F = {
  number = 'n', state = 's', request_text = 't', address = 'ad',
  applicant_name = 'an', applicant_phone = 'ap', channel = 'ch',
  claim_code = 'cc', create_time = 'ct', widen_time = 'wt', widened = 'w',
  escalated = 'e', rating_comment = 'rc', cancel_reason = 'cr',
  released_by = 'rb', request_id = 'ri', grid = 'g', agent = 'a',
  claim_time = 'kt', complete_time = 'dt', rating = 'r', rate_time = 'rt',
  points = 'p', settle_time = 'st', cancel_time = 'xt', matter_code = 'mc',
  matter_name = 'mn', matter_class = 'mk', matter_department = 'md',
  result_text = 'ot', result_reference = 'or',
}
local ESCALATE_AT = 'ea'

local function order_key(seq)
  return prefix .. 'order:' .. seq
end

-- Rewrites an order stored with long field names under the short ones,
-- leaving out empty values and false flags, and moves its list of changes
-- into the hash. Every script that writes an order calls it first.
local function upgrade(key, seq)
  if redis.call('HEXISTS', key, 'state') == 0 then
    return
  end
  local stored = redis.call('HGETALL', key)
  local renamed = {}
  for i = 1, #stored - 1, 2 do
    local name, value = F[stored[i]] or stored[i], stored[i + 1]
    local false_flag = (name == F.widened or name == F.escalated) and value == '0'
    if value ~= '' and not false_flag then
      renamed[#renamed + 1] = name
      renamed[#renamed + 1] = value
    end
  end
  local changes_key = prefix .. 'changes:' .. seq
  local count = 0
  for _, change in ipairs(redis.call('LRANGE', changes_key, 0, -1)) do
    if string.sub(change, 1, 10) ~= 'submitted|' then
      count = count + 1
      renamed[#renamed + 1] = 'h' .. count
      renamed[#renamed + 1] = change
    end
  end
  renamed[#renamed + 1] = 'hn'
  renamed[#renamed + 1] = tostring(count)
  redis.call('DEL', key, changes_key)
  redis.call('HSET', key, unpack(renamed))
end

-- Returns field `name` (a long name) of the order at `key`, whichever way
-- its fields are named; for the scripts that only read.
local function read_field(key, name)
  return redis.call('HGET', key, F[name]) or redis.call('HGET', key, name)
end

-- Orders in their grid phase sit in buckets of GRID_PHASE_BUCKET
-- consecutive sequence numbers per grid, small enough for Redis's compact
-- encoding: `grid_phase:<grid>:<bucket>` scores each order by the end of
-- its grid phase, `grid_buckets:<grid>` scores each bucket by the earliest
-- end in it, and `grid_phases` scores each grid by the earliest end among
-- its buckets.
local GRID_PHASE_BUCKET = 8192

local function bucket_of(seq)
  return math.floor(tonumber(seq) / GRID_PHASE_BUCKET)
end

local function grid_bucket_key(grid, bucket)
  return prefix .. 'grid_phase:' .. grid .. ':' .. bucket
end

local function grid_buckets_key(grid)
  return prefix .. 'grid_buckets:' .. grid
end

-- Before the grid phase schedules, orders in their grid phase were
-- members of `widen`, scored by the end of it, and of `open:grid:<grid>`,
-- scored by sequence number. The scripts still read and clear both.
local function open_grid_key(grid)
  return prefix .. 'open:grid:' .. grid
end

local function start_grid_phase(grid, seq, ends)
  local bucket = bucket_of(seq)
  redis.call('ZADD', grid_bucket_key(grid, bucket), ends, seq)
  redis.call('ZADD', grid_buckets_key(grid), 'LT', ends, bucket)
  redis.call('ZADD', prefix .. 'grid_phases', 'LT', ends, grid)
end

-- Scores `member` in `index` by the lowest score in `set`, or takes it out
-- when `set` is empty.
local function reindex(index, member, set)
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', index, first[2], member)
  else
    redis.call('ZREM', index, member)
  end
end

-- Takes order `seq` of `grid` off its grid phase schedule, if it is on it.
local function end_grid_phase(grid, seq)
  local bucket = bucket_of(seq)
  local set = grid_bucket_key(grid, bucket)
  if redis.call('ZREM', set, seq) == 1 then
    reindex(grid_buckets_key(grid), bucket, set)
    reindex(prefix .. 'grid_phases', grid, grid_buckets_key(grid))
  end
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

-- Returns the state of order `seq` at `key`, after `upgrade`, or nil and the failure to return
-- when the order does not exist or has no state.
local function state_of(key, seq)
  upgrade(key, seq)
  local state = redis.call('HGET', key, F.state)
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
  redis.call('HDEL', key, ESCALATE_AT)
  local grid = redis.call('HGET', key, F.grid)
  if grid then
    end_grid_phase(grid, seq)
    redis.call('ZREM', open_grid_key(grid), seq)
  end
  redis.call('ZREM', prefix .. 'open:county', seq)
  redis.call('ZREM', prefix .. 'widen', seq)
  redis.call('ZREM', prefix .. 'escalate', seq)
end


-- Upper bounds in milliseconds of the buckets of claim waits that the
-- console plots (`overview::CLAIM_WAIT_BOUNDS`); a last bucket takes the
-- rest.
local WAIT_BOUNDS_MS = {60000, 300000, 600000, 1800000, 3600000}
local CHINA_OFFSET_MS = 28800000
local DAY_MS = 86400000
-- A day's statistics are kept for 40 days, so the console's plots of the
-- last weeks always find them.
local STATS_TTL_SECONDS = 40 * 86400

-- Orders kept in an index by phone or agent: the newest ones, as many as
-- `overview::INDEXED_ORDERS`, so Redis keeps each index compact.
local INDEXED_ORDERS = 100

local function index(key, seq)
  redis.call('ZADD', key, seq, seq)
  redis.call('ZREMRANGEBYRANK', key, 0, -(INDEXED_ORDERS + 1))
end

-- Keeps what the console reads (see `redis_store/overview.rs`) in step
-- with a change of the order: the county's counts by state, the UTC+8
-- day's statistics, the indices by number, phone and agent, and the
-- order's changes. It is called with the arguments of `record`
-- and the state before the change (`from`, '' for a new order), after the
-- order's hash got its new state; an escalation or a rating keeps the
-- state. A submission passes `new`, the new order's state, number and
-- applicant's phone, which the other changes read from the hash.
local function track(seq, kind, from, agent, time, new)
  local key = order_key(seq)
  local to = new and new.state or redis.call('HGET', key, F.state)
  if to and from ~= to then
    if from ~= '' then
      redis.call('HINCRBY', prefix .. 'states', from, -1)
    end
    redis.call('HINCRBY', prefix .. 'states', to, 1)
  end

  local china_ms = tonumber(time) + CHINA_OFFSET_MS
  local day = math.floor(china_ms / DAY_MS)
  local hour = math.floor((china_ms % DAY_MS) / 3600000)
  local stats = prefix .. 'stats:' .. day
  if kind == 'submitted' then
    redis.call('HINCRBY', stats, 'submitted:' .. hour, 1)
    -- The numbers of a day whose daily parts differ only in their last
    -- two digits share a hash (`CountyKeys::number`).
    local number_day, daily = string.match(new.number, '^(%d%d%d%d%d%d%d%d)%-(%d+)$')
    if number_day then
      daily = tonumber(daily)
      redis.call('HSET', prefix .. 'numbers:' .. number_day .. ':' .. math.floor(daily / 100),
        tostring(daily % 100), seq)
    end
    if new.phone then
      index(prefix .. 'phone:' .. new.phone, seq)
    end
  elseif kind == 'claimed' then
    local fields = redis.call('HMGET', key, F.create_time, F.widen_time, F.grid)
    local wait = tonumber(time) - tonumber(fields[1] or time)
    local phase = 'county'
    if from == 'offered_to_grid' and tonumber(time) < tonumber(fields[2] or 0) then
      phase = 'grid'
    end
    local bucket = #WAIT_BOUNDS_MS
    for i, bound in ipairs(WAIT_BOUNDS_MS) do
      if wait < bound then
        bucket = i - 1
        break
      end
    end
    redis.call('HINCRBY', stats, 'claimed:' .. hour, 1)
    redis.call('HINCRBY', stats, 'phase:' .. phase, 1)
    redis.call('HINCRBY', stats, 'wait:' .. bucket, 1)
    if fields[3] then
      redis.call('HINCRBY', stats, 'grid_claims:' .. fields[3], 1)
      redis.call('HINCRBY', stats, 'grid_wait:' .. fields[3], wait)
    end
    index(prefix .. 'agent_orders:' .. agent, seq)
  elseif kind == 'widened' or kind == 'escalated' then
    redis.call('HINCRBY', stats, kind, 1)
  end
  redis.call('EXPIRE', stats, STATS_TTL_SECONDS)
  -- The submission is the order's create time, so it is not stored.
  if kind ~= 'submitted' then
    local count = redis.call('HINCRBY', key, 'hn', 1)
    redis.call('HSET', key, 'h' .. count, kind .. '|' .. agent .. '|' .. time)
  end
end
