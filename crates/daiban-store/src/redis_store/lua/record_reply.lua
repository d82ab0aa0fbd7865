-- Records an SMS that a phone sent, once per key.
--
-- KEYS[1]: the key that marks the reply as seen.
-- ARGV[2]: how long the mark is kept, in ms; ARGV[3]: the masked phone
-- number; ARGV[4]: the agent, or ''; ARGV[5]: the text; ARGV[6]: when it
-- was sent; ARGV[7]: the entries kept in the county's `replies` stream.
--
-- Returns 1 when recorded, 0 when the reply was seen before.
local ttl, phone, agent, text, time, kept = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ttl) then
  return 0
end
redis.call('XADD', prefix .. 'replies', 'MAXLEN', '~', kept, '*',
  'phone', phone, 'agent', agent, 'text', text, 'time', time)
return 1
