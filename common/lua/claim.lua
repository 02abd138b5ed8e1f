-- claim.lua: StartExecution's atomic claim of an execution name.
-- KEYS[1] execution record (hash)
-- KEYS[2] execution inbox (list); for an execution run to its end at its start (common/purestart.py): its history
-- ARGV[1] the Started inbox event (JSON); for one run to its end: its whole history, one chunk (records.encode_history_chunk)
-- ARGV[2] 0; for one run to its end: the retention in seconds (the record and the history expire, as commit.lua sets at an end)
-- ARGV[3..] field, value pairs of the new record (for one run to its end: the ended record)
-- Returns {1} when claimed (record written, Started queued or the history written), or
--         {0, status, input, output, started, stopped, defid} of the execution that holds the name.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local r = redis.call('HMGET', KEYS[1], 'status', 'input', 'output', 'started', 'stopped', 'defid')
  return {0, r[1], r[2], r[3], r[4], r[5], r[6]}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('RPUSH', KEYS[2], ARGV[1])
if ARGV[2] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {1}
