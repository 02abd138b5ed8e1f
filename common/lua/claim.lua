-- claim.lua: StartExecution's atomic claim of an execution name.
-- KEYS[1] execution record (hash)   KEYS[2] execution inbox (list)
-- ARGV[1] the Started inbox event (JSON)
-- ARGV[2..] field, value pairs of the new record
-- Returns {1} when claimed (record written, Started queued), or
--         {0, status, input, output, started, stopped, defid} of the execution that holds the name.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local r = redis.call('HMGET', KEYS[1], 'status', 'input', 'output', 'started', 'stopped', 'defid')
  return {0, r[1], r[2], r[3], r[4], r[5], r[6]}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('RPUSH', KEYS[2], ARGV[1])
return {1}
