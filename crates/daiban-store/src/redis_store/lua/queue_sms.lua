-- Queues one SMS per recipient for an offer of an order, and deletes the
-- announcement that owed them.
--
-- KEYS[1]: the order's SMS hash.
-- ARGV[2]: now; ARGV[3]: how long the hash is kept, in ms; ARGV[4]: the
-- order's sequence number; ARGV[5]: the outbox member of the announcement,
-- or ''; ARGV[6..]: pairs of the field `<offer>.<recipient>` of an SMS,
-- with the offer's code, and the same field with the offer's name.
--
-- Returns the number queued. An SMS whose field exists already, in either
-- form, is skipped.
local now, retention, seq, announcement = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local due = prefix .. 'smsdue'

-- Fields looked up by one HMGET, few enough for Lua's stack.
local LOOKUP_CHUNK = 1000

-- Returns the set of named fields that exist in the hash. A new hash has
-- none: only builds before the offer codes wrote them.
local function existing_named_fields()
  local found = {}
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return found
  end
  for first = 6, #ARGV, 2 * LOOKUP_CHUNK do
    local names = {}
    for i = first, math.min(first + 2 * LOOKUP_CHUNK, #ARGV) - 1, 2 do
      if ARGV[i + 1] ~= ARGV[i] then
        names[#names + 1] = ARGV[i + 1]
      end
    end
    if #names > 0 then
      for j, value in ipairs(redis.call('HMGET', KEYS[1], unpack(names))) do
        if value then
          found[names[j]] = true
        end
      end
    end
  end
  return found
end

local named_exists = existing_named_fields()
local queued = 0
for i = 6, #ARGV, 2 do
  local field, named = ARGV[i], ARGV[i + 1]
  if not named_exists[named]
    and redis.call('HSETNX', KEYS[1], field, 'queued|0|' .. now .. '||||') == 1 then
    redis.call('ZADD', due, now, seq .. '.' .. field)
    queued = queued + 1
  end
end
if queued > 0 then
  redis.call('PEXPIRE', KEYS[1], retention)
end
if announcement ~= '' then
  redis.call('ZREM', prefix .. 'outbox', announcement)
end
return queued
