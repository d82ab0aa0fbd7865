-- Queues one SMS per recipient for an offer of an order, and deletes the
-- announcement that owed them.
--
-- KEYS[1]: the order's SMS hash.
-- ARGV[2]: now; ARGV[3]: how long the hash is kept, in ms; ARGV[4]: the
-- order's sequence number; ARGV[5]: the outbox member of the announcement,
-- or ''; ARGV[6..]: the fields `<offer>.<recipient>` of the SMS.
--
-- Returns the number queued; a field that exists already is skipped.
local now, retention, seq, announcement = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local due = prefix .. 'smsdue'
local queued = 0
for i = 6, #ARGV do
  local field = ARGV[i]
  if redis.call('HSETNX', KEYS[1], field, 'queued|0|' .. now .. '||||') == 1 then
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
