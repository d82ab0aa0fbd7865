-- Records a delivery report.
--
-- KEYS[1]: the county's `smsdue` set.
-- ARGV[2]: `sms` when ARGV[3] is a queue member with the offer's code,
-- or `provider` when it is the provider's message id.
-- ARGV[4]: '1' when delivered, '0' when not. ARGV[5]: the error.
-- ARGV[6]: now. ARGV[7]: the failures kept per county.
-- ARGV[8]: for `sms`, the SMS's field with the offer's name.
--
-- Returns {'recorded', member}, {'duplicate', member} or {'unmatched'},
-- with the member in the form the SMS was queued with.
local kind, target, delivered, err, now, kept = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local member = target
if kind == 'provider' then
  member = redis.call('GET', prefix .. 'smsid:' .. target)
  if not member then
    return {'unmatched'}
  end
end
local seq, field = sms_split(member)
local key = seq and sms_key(seq)
local value = false
if key and kind == 'sms' then
  field, value = sms_find(key, field, ARGV[8])
  member = seq .. '.' .. field
elseif key then
  value = redis.call('HGET', key, field)
end
local r = value and sms_decode(value)
if not r then
  return {'unmatched'}
end

if r.state == 'delivered' or (delivered == '0' and r.state == 'failed' and r.err == err) then
  return {'duplicate', member}
end
r.reported = now
if delivered == '1' then
  r.state = 'delivered'
  r.err = ''
else
  r.state = 'failed'
  r.err = err
  sms_note_failure(member, now, kept)
end
redis.call('ZREM', KEYS[1], member)
redis.call('HSET', key, field, sms_encode(r))
return {'recorded', member}
