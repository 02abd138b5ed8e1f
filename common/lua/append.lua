-- append.lua: add an event to a running execution's inbox (StopExecution, reports, timers, activity results).
-- KEYS[1] execution record   KEYS[2] inbox
-- ARGV[1] the event (JSON)
-- ARGV[2] optional: now (ms). Given, the record's `dq` mark says whether a drive is already queued
--         (set here, cleared by a driver taking the lease, common/driverscripts.py), so the caller publishes one only when none is
-- ARGV[3] with ARGV[2]: a mark older than this (ms) is not trusted (its message may be lost) and is renewed
-- ARGV[4..] optional, with ARGV[2]: more events, appended after ARGV[1] (a batch of activity results)
-- Returns {-1} if there is no such execution, {0, status} if it has ended (nothing appended),
--         {1, status} when appended; with ARGV[2], {1, status, 1} if the caller must publish a drive
--         and {1, status, 0} if one is queued already.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'Succeeded' or status == 'Failed' or status == 'Stopped' or status == 'TimedOut' then
  return {0, status}
end
if #ARGV > 3 then
  redis.call('RPUSH', KEYS[2], ARGV[1], unpack(ARGV, 4))
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
if ARGV[2] == nil or ARGV[2] == '' then return {1, status} end
local mark = tonumber(redis.call('HGET', KEYS[1], 'dq') or '')
if mark and math.abs(tonumber(ARGV[2]) - mark) < tonumber(ARGV[3]) then return {1, status, 0} end
redis.call('HSET', KEYS[1], 'dq', ARGV[2])
return {1, status, 1}
