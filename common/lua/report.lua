-- report.lua: deliver a task token's report (ReportTask*, or a child execution's end) exactly once.
-- KEYS[1] execution record   KEYS[2] inbox   KEYS[3] tasks hash (task id -> waiting | done)
-- ARGV[1] task id   ARGV[2] the TaskReported event (JSON)   ARGV[3] the reporter's account, '' for the service
-- ARGV[4] optional: now (ms); ARGV[5] with it: the mark's age limit (ms). As in append.lua: the `dq`
--         mark decides whether the caller publishes a drive
-- Returns {1, history length} when delivered (with ARGV[4]: {1, history length, 1 if the caller must
-- publish a drive else 0}); {0} if the task already completed (or its execution ended); {-1} if there
-- is no such execution or it belongs to another account; {-2} if the task never waited for a callback.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'acct') ~= ARGV[3] then return {-1} end
local state = redis.call('HGET', KEYS[3], ARGV[1])
if state == 'done' then return {0} end
if state ~= 'waiting' then return {-2} end
redis.call('HSET', KEYS[3], ARGV[1], 'done')
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'Succeeded' or status == 'Failed' or status == 'Stopped' or status == 'TimedOut' then return {0} end
redis.call('RPUSH', KEYS[2], ARGV[2])
local hseq = tonumber(redis.call('HGET', KEYS[1], 'hseq') or '0')
if ARGV[4] == nil or ARGV[4] == '' then return {1, hseq} end
local mark = tonumber(redis.call('HGET', KEYS[1], 'dq') or '')
if mark and math.abs(tonumber(ARGV[4]) - mark) < tonumber(ARGV[5]) then return {1, hseq, 0} end
redis.call('HSET', KEYS[1], 'dq', ARGV[4])
return {1, hseq, 1}
