-- maprun_acquire.lua: a MapRun driver takes the run's lease and reads its record and inbox, in one call.
-- KEYS[1] MapRun record (hash)   KEYS[2] MapRun inbox (list)   KEYS[3] MapRun lease (string)
-- ARGV[1] lease time in milliseconds
-- Returns {-1} if there is no such MapRun, {0} if another driver holds the lease, else
--         {token, {field, value, ...} of the record, {inbox events...}}.
-- Taking the lease clears the `dq` mark (a drive is queued, maprun_child_end.lua / maprun_update.lua)
-- and the count of children ended since the last drive (`ew`, maprun_child_end.lua).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {0} end
local token = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('SET', KEYS[3], token, 'PX', ARGV[1])
redis.call('HDEL', KEYS[1], 'dq', 'ew')
return {token, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
