-- reopen.lua: RedriveExecution's atomic reopening of a Failed, Stopped or TimedOut execution (issue 18).
-- KEYS[1] execution record   KEYS[2] inbox   KEYS[3] history   KEYS[4] lease   KEYS[5] tasks hash
--   (one execution: one hash tag, one slot)
-- ARGV[1] the Redriven inbox event (a JSON object); the script adds `n`, the redrive count, to it
-- ARGV[2] the most redrives one execution may have (OPENFNF_MAX_REDRIVES)
-- ARGV[3] now (ms): the record's `dq` mark (a drive is queued, as append.lua sets it)
-- ARGV[4] the most history events of an execution (OPENFNF_MAX_HISTORY_EVENTS)
-- Returns {-1} if there is no such execution (never was, or past its retention),
--         {0, status} if it is not Failed, Stopped or TimedOut (Succeeded, Running: nothing changed),
--         {-2, redrives} if it has been redriven the most times allowed (nothing changed),
--         {-3, history length} if its history has no room for ExecutionRedriven and a step (nothing changed),
--         {1, redrives} when reopened: status Running, the retention TTL undone on every key, the
--         Redriven event queued; the caller restores the wake-up, the running count, and publishes a drive.
-- The script is the arbiter of concurrent redrives: the first turns the status to Running, the
-- others then find it Running. Deleting the lease makes a drive still holding the ended execution's
-- lease lose it (its token is no longer there): its commit (commit.lua) writes nothing, so it can
-- neither put the TTL back nor overwrite the reopened status.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'Failed' and status ~= 'Stopped' and status ~= 'TimedOut' then return {0, status} end
local count = tonumber(redis.call('HGET', KEYS[1], 'redrives') or '0')
if count >= tonumber(ARGV[2]) then return {-2, count} end
local hseq = tonumber(redis.call('HGET', KEYS[1], 'hseq') or '0')
if hseq + 2 >= tonumber(ARGV[4]) then return {-3, hseq} end
count = count + 1
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[1], 'status', 'Running', 'redrives', count, 'dq', ARGV[3])
redis.call('HDEL', KEYS[1], 'stopped', 'output', 'error', 'cause')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[3])
redis.call('PERSIST', KEYS[5])
local event = cjson.decode(ARGV[1])
event['n'] = count
redis.call('RPUSH', KEYS[2], cjson.encode(event))
return {1, count}
