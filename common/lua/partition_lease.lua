-- partition_lease.lua: take, keep or drop the lease on one partition of the timers' sets.
-- KEYS[1] the lease key   ARGV[1] the timers process id   ARGV[2] TTL (ms)   ARGV[3] 'take' | 'drop'
-- take: set (free) or renew (ours) the lease, returns 1; held by another: 0. drop: delete if ours, returns 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'drop' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
