-- append.lua: add an event to a running execution's inbox (StopExecution, reports, timers).
-- KEYS[1] execution record   KEYS[2] inbox
-- ARGV[1] the event (JSON)
-- Returns {-1} if there is no such execution, {0, status} if it has ended (nothing appended),
--         {1, status} when appended.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'Succeeded' or status == 'Failed' or status == 'Stopped' or status == 'TimedOut' then
  return {0, status}
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return {1, status}
