-- watch.lua: read an execution for DescribeExecution and, if it is still running, ask commit.lua
-- to publish its end (so a long-poll wakes at once instead of polling).
-- KEYS[1] execution record
-- ARGV[1] the watch mark to set while it runs ('1' PUBLISH, 's' SPUBLISH: api/waiters.py), '0' to only read
-- Returns false if there is no such execution, else the values of the fields in ARGV[2..].
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '0' then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status ~= 'Succeeded' and status ~= 'Failed' and status ~= 'Stopped' and status ~= 'TimedOut' then
    redis.call('HSET', KEYS[1], 'watch', ARGV[1])
  end
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
