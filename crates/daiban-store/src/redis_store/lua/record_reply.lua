-- Starts or finishes the handling of an SMS that a phone sent.
--
-- KEYS[1]: the key that marks the reply, `pending:<until>` while it is
-- handled and `done` after.
-- ARGV[2]: `start` or `finish`; ARGV[3]: how long the mark is kept, in ms.
-- For `start`: ARGV[4]: now; ARGV[5]: until when a pending reply blocks a
-- repeat. For `finish`: ARGV[4]: the masked phone number; ARGV[5]: the agent, or
-- ''; ARGV[6]: the text; ARGV[7]: when it was sent; ARGV[8]: what came of
-- it; ARGV[9]: the entries kept in the county's `replies` stream.
--
-- `start` returns 1 when the caller may handle the reply, 0 when it is
-- handled or being handled. `finish` returns 1.
local mode, ttl = ARGV[2], ARGV[3]

if mode == 'start' then
  local now, blocked_until = tonumber(ARGV[4]), ARGV[5]
  local mark = redis.call('GET', KEYS[1])
  if mark == 'done' then
    return 0
  end
  local blocked = mark and tonumber(string.match(mark, '^pending:(%d+)$'))
  if blocked and blocked > now then
    return 0
  end
  redis.call('SET', KEYS[1], 'pending:' .. blocked_until, 'PX', ttl)
  return 1
end

local phone, agent, text, time, outcome, kept = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
redis.call('SET', KEYS[1], 'done', 'PX', ttl)
redis.call('XADD', prefix .. 'replies', 'MAXLEN', '~', kept, '*',
  'phone', phone, 'agent', agent, 'text', text, 'time', time, 'outcome', outcome)
return 1
