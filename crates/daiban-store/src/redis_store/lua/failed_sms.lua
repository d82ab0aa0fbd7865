-- Returns the county's latest failed SMS, newest first.
--
-- KEYS[1]: the county's `smsfailed` set.
-- ARGV[2]: the most to return.
--
-- Returns a list of {member, record}; an SMS whose record expired is left
-- out.
local limit = tonumber(ARGV[2])

local found = {}
for _, member in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, limit - 1)) do
  local seq, field = sms_split(member)
  local value = seq and redis.call('HGET', sms_key(seq), field)
  if value then
    table.insert(found, {member, value})
  end
end
return found
