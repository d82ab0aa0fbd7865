-- Helpers of the SMS scripts.
--
-- Each order's SMS are the fields `<offer>.<recipient>` of the hash
-- `sms:<sequence>`, with values `state|attempts|queued|sent|reported|
-- provider id|error`. `queued` is in ms since the epoch; `sent` and
-- `reported` are `+` and the ms since `queued`, or empty when not yet.
-- Records written before kept them in ms since the epoch too. The error
-- comes last because it is free text; no other part contains `|`. Queued
-- and leased SMS are the members `<sequence>.<offer>.<recipient>` of the
-- sorted set `smsdue`, scored by when they are due or their lease ends.
--
-- `<offer>` is the offer's code, such as `W` for `widened` (`OFFER_CODES`
-- in `sms.rs`), or its name when it has no code. SMS queued before the
-- codes have the offer's name in both their field and their member, and
-- keep it until they expire.

-- Returns the time `part` of a record in ms since the epoch, or ''.
local function sms_time(part, queued)
  if string.sub(part, 1, 1) == '+' then
    return string.format('%.0f', tonumber(queued) + tonumber(string.sub(part, 2)))
  end
  return part
end

-- Returns time `ms` as the part of a record: `+` and the ms since
-- `queued`, or '' for no time.
local function sms_offset(ms, queued)
  if ms == '' then
    return ''
  end
  return '+' .. string.format('%.0f', tonumber(ms) - tonumber(queued))
end

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
    sent = sms_time(sent, queued),
    reported = sms_time(reported, queued),
    provider = provider,
    err = err,
  }
end

local function sms_encode(r)
  return table.concat({r.state, r.attempts, r.queued, sms_offset(r.sent, r.queued),
    sms_offset(r.reported, r.queued), r.provider, r.err}, '|')
end

-- Splits a queue member into the order's sequence number and the field of
-- the SMS in the order's hash.
local function sms_split(member)
  return string.match(member, '^(%d+)%.(.+)$')
end

local function sms_key(seq)
  return prefix .. 'sms:' .. seq
end

-- Returns the field of an SMS in the order's hash `key`, and its record.
-- It tries `field`, the field with the offer's code, and then `named`, the
-- field with the offer's name. The record is false when neither exists.
local function sms_find(key, field, named)
  local value = redis.call('HGET', key, field)
  if not value and named ~= field then
    local old = redis.call('HGET', key, named)
    if old then
      return named, old
    end
  end
  return field, value
end

-- Remembers a failed SMS in the county's list of the latest failures,
-- which keeps the newest `kept`.
local function sms_note_failure(member, time, kept)
  local failed = prefix .. 'smsfailed'
  redis.call('ZADD', failed, time, member)
  redis.call('ZREMRANGEBYRANK', failed, 0, -(tonumber(kept) + 1))
end
