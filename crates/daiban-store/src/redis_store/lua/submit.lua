-- Creates an order with the county's next sequence number and the next
-- number of its UTC+8 day, unless an order of the county already has its
-- request id. A retry therefore takes no numbers.
--
-- KEYS[1]: the county's sequence counter. KEYS[2]: the counter of the
-- create time's UTC+8 day. KEYS[3]: the hash of request ids that contains
-- the request id, and KEYS[4]: the key of the request id as stored before
-- request ids moved into hashes; both absent without a request id.
-- ARGV[2]: the UTC+8 day of the create time, as yyyymmdd. ARGV[3]: end of
-- the grid phase, or '' for an order offered county-wide at once. ARGV[4]:
-- grid or ''. ARGV[5]: escalation time. ARGV[6]: create time. ARGV[7]: the
-- request id or ''. ARGV[8] on: field, value pairs of the order's hash,
-- all but `number` and `claim_code`, which this script adds.
--
-- Returns {'created', sequence, daily sequence, number, claim code} or
-- {'existing', sequence, fields of the order}.
local sequence_key, day_key, requests_key, old_request_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local day = ARGV[2]
local grid_phase_until, grid, escalate_at, create_time = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local request_id = ARGV[7]

-- How long a day's counter is kept: long enough for any order of the day
-- to be submitted, short enough not to pile up.
local DAY_COUNTER_TTL_SECONDS = 3 * 24 * 3600
-- The claim code is the sequence number times CLAIM_CODE_MULTIPLIER
-- modulo CLAIM_CODE_MODULUS, as `daiban_domain::claim_code_for` computes
-- it; `RedisStore::submit` checks that both agree. The product stays below
-- 2^53, so Lua's doubles hold it exactly.
local CLAIM_CODE_MODULUS = 1000000
local CLAIM_CODE_MULTIPLIER = 737111

if requests_key then
  local existing = redis.call('HGET', requests_key, request_id)
    or redis.call('GET', old_request_key)
  if existing then
    return {'existing', existing, redis.call('HGETALL', order_key(existing))}
  end
end
local next_sequence = tonumber(redis.call('GET', sequence_key) or '0') + 1
local seq = tostring(next_sequence)
local key = order_key(seq)
if redis.call('EXISTS', key) == 1 then
  return {'err', 'corrupt', 'sequence number ' .. seq .. ' is already used by another order'}
end

redis.call('INCR', sequence_key)
local daily = redis.call('INCR', day_key)
redis.call('EXPIRE', day_key, DAY_COUNTER_TTL_SECONDS)
local number = string.format('%s-%04d', day, daily)
local claim_code = string.format('%06d',
  (next_sequence % CLAIM_CODE_MODULUS) * CLAIM_CODE_MULTIPLIER % CLAIM_CODE_MODULUS)

if requests_key then
  redis.call('HSET', requests_key, request_id, seq)
end
local fields = {F.number, number, F.claim_code, claim_code}
local created = {number = number}
for i = 8, #ARGV - 1, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  fields[#fields + 1] = name
  fields[#fields + 1] = value
  if name == F.state then
    created.state = value
  elseif name == F.applicant_phone then
    created.phone = value
  end
end
if grid_phase_until ~= '' then
  -- `widen_due` puts the order on the escalation schedule when it widens.
  fields[#fields + 1] = ESCALATE_AT
  fields[#fields + 1] = escalate_at
end
redis.call('HSET', key, unpack(fields))
if grid_phase_until ~= '' then
  start_grid_phase(grid, seq, grid_phase_until)
else
  redis.call('ZADD', prefix .. 'escalate', escalate_at, seq)
  redis.call('ZADD', prefix .. 'open:county', seq, seq)
end
track(seq, 'submitted', '', '', create_time, created)
record(seq, 'submitted', '', create_time)
announce('submitted', seq, create_time)
return {'created', seq, daily, number, claim_code}
