-- stop_child.lua: stop a child execution whose parent no longer waits for it, and name its own children.
-- KEYS[1] execution record   KEYS[2] inbox   KEYS[3] its children hash (keys.children)
-- ARGV[1] the StopRequested event (JSON)   ARGV[2] now (ms)   ARGV[3] the `dq` mark's age limit (ms)
-- Returns {-1} if there is no such execution, {0} if it has ended (nothing written), else
--         {1, publish, flow name, child tag...}: the stop is queued, publish is 1 when the caller must
--         publish a drive (the `dq` mark, as in append.lua), and the children it has adopted follow.
-- The record is marked `stopping` in the same call: adopt.lua adopts no child for it from now on, so
-- the caller, stopping the returned children at once, reaches the whole tree without waiting for
-- each level's drive (a runaway flow spawns a level per drive; the stop must move faster).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local rec = redis.call('HMGET', KEYS[1], 'status', 'flow', 'dq')
local status = rec[1]
if status == 'Succeeded' or status == 'Failed' or status == 'Stopped' or status == 'TimedOut' then
  return {0}
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'stopping', '1')
local publish = 1
local mark = tonumber(rec[3] or '')
if mark and math.abs(tonumber(ARGV[2]) - mark) < tonumber(ARGV[3]) then
  publish = 0
else
  redis.call('HSET', KEYS[1], 'dq', ARGV[2])
end
local out = {1, publish, rec[2] or ''}
for _, child in ipairs(redis.call('HKEYS', KEYS[3])) do out[#out + 1] = child end
return out
