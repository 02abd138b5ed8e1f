-- claim_due.lua: take due members of a schedule zset (timers, wake-ups) for a while.
-- Each due member is pushed ARGV[3] ms into the future, so a process that dies before it
-- finishes the entry leaves it to fire again, and several processes do not take the same one.
-- KEYS[1] the zset (score = due time in ms)
-- ARGV[1] now (ms)   ARGV[2] most members to take   ARGV[3] claim time (ms)
-- Returns {member, new score, member, new score, ...}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, member)
  out[#out + 1] = member
  out[#out + 1] = tostring(until_ms)
end
return out
