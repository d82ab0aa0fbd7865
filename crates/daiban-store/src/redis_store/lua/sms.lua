-- Helpers of the SMS scripts.
--
-- Each order's SMS are the fields `<offer>.<recipient>` of the hash
-- `sms:<sequence>`, with values `state|attempts|queued|sent|reported|
-- provider id|error` (times in ms, empty when not yet). The error comes
-- last because it is free text; no other part contains `|`. Queued and
-- leased SMS are the members `<sequence>.<offer>.<recipient>` of the sorted
-- set `smsdue`, scored by when they are due or their lease ends.

local function sms_decode(value)
  local state, attempts, queued, sent, reported, provider, err = string.match(value,
    '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if not state then
    return nil
  end
  return {
    state = state,
    attempts = tonumber(attempts) or 0,
    queued = queued,
    sent = sent,
    reported = reported,
    provider = provider,
    err = err,
  }
end

local function sms_encode(r)
  return table.concat({r.state, r.attempts, r.queued, r.sent, r.reported, r.provider, r.err}, '|')
end

-- Splits a queue member into the order's sequence number and the field of
-- the SMS in the order's hash.
local function sms_split(member)
  return string.match(member, '^(%d+)%.(.+)$')
end

local function sms_key(seq)
  return prefix .. 'sms:' .. seq
end

-- Remembers a failed SMS in the county's list of the latest failures,
-- which keeps the newest `kept`.
local function sms_note_failure(member, time, kept)
  local failed = prefix .. 'smsfailed'
  redis.call('ZADD', failed, time, member)
  redis.call('ZREMRANGEBYRANK', failed, 0, -(tonumber(kept) + 1))
end
