-- maprun_child_end.lua: a child execution of a MapRun ended: count it and tell the run, exactly once.
-- KEYS[1] MapRun record   KEYS[2] inbox   KEYS[3] running children (hash: child index -> items)
-- ARGV[1] child index   ARGV[2] the child's status (Succeeded | Failed | TimedOut | Stopped)
-- ARGV[3] now (ms)   ARGV[4] a `dq` mark older than this (ms) is not trusted (as in append.lua)
-- The child's items move from `running` to `succeeded`, `failed` or `aborted` in this call (a child
-- stopped by the run itself, which is then over, is aborted; one stopped by anyone else failed).
-- Returns {0} if the child was counted already (or is unknown), {1, 1} when counted and the caller
-- must publish a drive of the run, {1, 0} when counted and one is queued (or the run is over).
local n = redis.call('HGET', KEYS[3], ARGV[1])
if not n then return {0} end
n = tonumber(n)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'running', -n)
redis.call('HINCRBY', KEYS[1], 'kids', -1)
local status = redis.call('HGET', KEYS[1], 'status')
local over = status == 'Succeeded' or status == 'Failed' or status == 'Aborted'
local field = 'failed'
if ARGV[2] == 'Succeeded' then
  field = 'succeeded'
elseif ARGV[2] == 'Stopped' and over then
  field = 'aborted'
end
redis.call('HINCRBY', KEYS[1], field, n)
if over then return {1, 0} end
redis.call('RPUSH', KEYS[2], cjson.encode({t = 'ChildEnded', i = tonumber(ARGV[1]), s = ARGV[2]}))
local mark = tonumber(redis.call('HGET', KEYS[1], 'dq') or '')
if mark and math.abs(tonumber(ARGV[3]) - mark) < tonumber(ARGV[4]) then return {1, 0} end
redis.call('HSET', KEYS[1], 'dq', ARGV[3])
return {1, 1}
