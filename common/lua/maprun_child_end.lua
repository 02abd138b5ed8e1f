-- maprun_child_end.lua: children of a MapRun ended: count each once and tell the run, in one call.
-- KEYS[1] MapRun record   KEYS[2] inbox   KEYS[3] running children (hash: child index -> items)
-- ARGV[1] now (ms)   ARGV[2] a `dq` mark older than this (ms) is not trusted (as in append.lua)
-- ARGV[3..] child index, the child's status (Succeeded | Failed | TimedOut | Stopped) pairs
-- Each child's items move from `running` to `succeeded`, `failed` or `aborted` in this call (a child
-- stopped by the run itself, which is then over, is aborted; one stopped by anyone else failed); a
-- child counted before is skipped. One ChildEnded event {n = children counted} goes to the inbox.
-- Refills are batched: a drive is asked for once an eighth of the concurrency (at least 1) has ended
-- since the last drive began (`ew`, cleared by maprun_acquire.lua), or when no child runs any more;
-- before that the caller only brings the run's wake-up near (the timers drive it soon).
-- A run that is over and waits to be redriven (`rq`, worker/mapruns.py) is driven once its last child is counted.
-- Returns {0, 0} if no child was counted, {n, 1} when n were and the caller must publish a drive of
-- the run, {n, 0} when n were and one is queued already (or the run is over), {n, 2} when n were and
-- the caller should bring the run's wake-up near instead.
local status = redis.call('HGET', KEYS[1], 'status')
local over = status == 'Succeeded' or status == 'Failed' or status == 'Aborted'
local counted = 0
for i = 3, #ARGV, 2 do
  local n = redis.call('HGET', KEYS[3], ARGV[i])
  if n then
    n = tonumber(n)
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HINCRBY', KEYS[1], 'running', -n)
    redis.call('HINCRBY', KEYS[1], 'kids', -1)
    local field = 'failed'
    if ARGV[i + 1] == 'Succeeded' then
      field = 'succeeded'
    elseif ARGV[i + 1] == 'Stopped' and over then
      field = 'aborted'
    end
    redis.call('HINCRBY', KEYS[1], field, n)
    counted = counted + 1
  end
end
if counted == 0 then return {0, 0} end
local kids = tonumber(redis.call('HGET', KEYS[1], 'kids') or '0')
if over and (kids > 0 or redis.call('HGET', KEYS[1], 'rq') ~= '1') then return {counted, 0} end
if not over then
  redis.call('RPUSH', KEYS[2], cjson.encode({t = 'ChildEnded', n = counted}))
  local waiting = redis.call('HINCRBY', KEYS[1], 'ew', counted)
  local batch = math.max(1, math.floor(tonumber(redis.call('HGET', KEYS[1], 'conc') or '1') / 8))
  if waiting < batch and kids > 0 then return {counted, 2} end
end
local mark = tonumber(redis.call('HGET', KEYS[1], 'dq') or '')
if mark and math.abs(tonumber(ARGV[1]) - mark) < tonumber(ARGV[2]) then return {counted, 0} end
redis.call('HSET', KEYS[1], 'dq', ARGV[1])
return {counted, 1}
