-- maprun_commit.lua: write a MapRun drive's decisions atomically, if the driver still holds the lease.
-- KEYS[1] MapRun record   KEYS[2] inbox   KEYS[3] lease   KEYS[4] running children (hash: child index -> items)
-- ARGV[1] fencing token from maprun_acquire.lua
-- ARGV[2] inbox events consumed (removed from the head); ARGV[3] 1: release the lease, 0: keep it
-- ARGV[4] k, then ARGV[5 .. 4+2k]: field, value pairs for the record
-- ARGV[5+2k ..]: child index, items pairs of the children this commit starts: each is recorded as running
--         and the record's counts move (`running` += items, `kids` += 1) in this same call, so the
--         counts DescribeMapRun reads always add up to Total.
-- Returns -1 if the fence was lost (nothing written), else the number of inbox events left.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'dq')
  return -1
end
local consumed = tonumber(ARGV[2])
if consumed > 0 then redis.call('LTRIM', KEYS[2], consumed, -1) end
local k = tonumber(ARGV[4])
if k > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + 2 * k)) end
local i = 5 + 2 * k
while i < #ARGV do
  if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'running', tonumber(ARGV[i + 1]))
    redis.call('HINCRBY', KEYS[1], 'kids', 1)
  end
  i = i + 2
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[3]) end
local left = redis.call('LLEN', KEYS[2])
if left > 0 then redis.call('HDEL', KEYS[1], 'dq') end
return left
