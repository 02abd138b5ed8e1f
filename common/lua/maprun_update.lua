-- maprun_update.lua: UpdateMapRun, the parent's abort and its redrive: change a MapRun and wake its driver.
-- KEYS[1] MapRun record   KEYS[2] inbox   KEYS[3..] (a redrive only) the run's other keys, whose TTL it undoes
-- ARGV[1] the inbox event (JSON)   ARGV[2] now (ms)   ARGV[3] a `dq` mark older than this (ms) is renewed
-- ARGV[4 ..] field, value pairs to set (Concurrency and tolerances; a redrive's activity id and mark)
-- A Redrive event ({"t": "Redrive", ...}, the parent redriven: worker/mapruns.py) is taken by a run that
-- is over too (that is its purpose); every other event only while the run is not over.
-- Returns {-1} if there is no such MapRun, {0, status} if it is over (nothing changed), else
--         {1, 1 if the caller must publish a drive else 0, conc, tcount, tpct} (the values now in force).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local status = redis.call('HGET', KEYS[1], 'status')
local over = status == 'Succeeded' or status == 'Failed' or status == 'Aborted'
if over and cjson.decode(ARGV[1])['t'] ~= 'Redrive' then return {0, status} end
if over then
  redis.call('PERSIST', KEYS[1])
  for i = 2, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
redis.call('RPUSH', KEYS[2], ARGV[1])
local publish = 1
local mark = tonumber(redis.call('HGET', KEYS[1], 'dq') or '')
if mark and math.abs(tonumber(ARGV[2]) - mark) < tonumber(ARGV[3]) then
  publish = 0
else
  redis.call('HSET', KEYS[1], 'dq', ARGV[2])
end
local v = redis.call('HMGET', KEYS[1], 'conc', 'tcount', 'tpct')
return {1, publish, v[1], v[2], v[3]}
