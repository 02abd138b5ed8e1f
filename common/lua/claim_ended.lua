-- claim_ended.lua: StartExecution's atomic claim of an execution run to its end at its start
-- (common/purestart.py): the name claimed and the ended execution written at once, as claim.lua
-- claims a running one (the same answer when the name is taken).
-- KEYS[1] execution record (hash)   KEYS[2] execution history (list)
-- ARGV[1] the whole history, one chunk (common/records.py encode_history_chunk)
-- ARGV[2] retention in seconds: the record and the history expire after it, as commit.lua sets at an end
-- ARGV[3..] field, value pairs of the ended record
-- Returns {1} when claimed, or {0, status, input, output, started, stopped, defid} of the execution that holds the name.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local r = redis.call('HMGET', KEYS[1], 'status', 'input', 'output', 'started', 'stopped', 'defid')
  return {0, r[1], r[2], r[3], r[4], r[5], r[6]}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {1}
