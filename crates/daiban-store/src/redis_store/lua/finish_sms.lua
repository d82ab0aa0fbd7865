-- Records the result of sending an SMS.
--
-- KEYS[1]: the order's SMS hash.
-- ARGV[2]: the order's sequence number; ARGV[3]: the SMS's field with the
-- offer's code;
-- ARGV[4]: the result, `sent`, `retry`, `defer` (queued again, not counted
-- as a try), `failed`, `unknown` or `withdrawn`;
-- ARGV[5]: now; ARGV[6]: when to retry; ARGV[7]: the provider's message
-- id, or ''; ARGV[8]: the error; ARGV[9]: how long the provider's id is
-- kept, in ms; ARGV[10]: the failures kept per county; ARGV[11]: the
-- SMS's field with the offer's name.
--
-- An SMS queued with the offer's name keeps that field and member.
--
-- Returns 1, or 0 when the SMS is gone or a delivery report came first.
local seq, result, now, at = ARGV[2], ARGV[4], ARGV[5], ARGV[6]
local provider, err, provider_ttl, kept = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local due = prefix .. 'smsdue'
local field, value = sms_find(KEYS[1], ARGV[3], ARGV[11])
local member = seq .. '.' .. field
local r = value and sms_decode(value)
if not r or ((r.state == 'delivered' or r.state == 'failed') and r.reported ~= '') then
  redis.call('ZREM', due, member)
  return 0
end

if result == 'retry' then
  r.state = 'queued'
  r.err = err
  redis.call('ZADD', due, at, member)
elseif result == 'defer' then
  r.state = 'queued'
  r.attempts = math.max(r.attempts - 1, 0)
  redis.call('ZADD', due, at, member)
else
  redis.call('ZREM', due, member)
  if result == 'sent' then
    r.state = 'sent'
    r.sent = now
    r.err = ''
    r.provider = provider
    if provider ~= '' then
      redis.call('SET', prefix .. 'smsid:' .. provider, member, 'PX', provider_ttl)
    end
  elseif result == 'failed' then
    r.state = 'failed'
    r.err = err
    sms_note_failure(member, now, kept)
  elseif result == 'unknown' then
    r.state = 'unknown'
    r.err = err
  else
    r.state = 'withdrawn'
  end
end
redis.call('HSET', KEYS[1], field, sms_encode(r))
return 1
