-- arm_schedule.lua: after the timers fired tick ARGV[1] of a schedule, arm its next tick, unless the
-- schedule changed in the meantime (updated, disabled, deleted): then the record stays as it is.
-- KEYS[1] schedule hash
-- ARGV[1] the tick just fired (ms, the `next` field it was read at)   ARGV[2] the next tick (ms)
-- Returns {1, next} when armed, {0, next, enable} when the record no longer holds ARGV[1],
--         {-1} when the schedule is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local r = redis.call('HMGET', KEYS[1], 'next', 'Enable')
if r[1] ~= ARGV[1] or r[2] ~= '1' then return {0, r[1] or '', r[2] or ''} end
redis.call('HSET', KEYS[1], 'next', ARGV[2])
return {1, ARGV[2]}
