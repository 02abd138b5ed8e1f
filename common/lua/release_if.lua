-- release_if.lua: remove a zset member only if its score is still the one we claimed it at
-- (someone who re-armed it in the meantime keeps it).
-- KEYS[1] the zset   ARGV[1] member   ARGV[2] score given by claim_due.lua
-- Returns 1 if removed, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
