-- maprun_child_done.lua: record a MapRun child that its run's driver ran to its end in one decision
-- (a Processor of pure states: what a first drive would have written, without the message hop).
-- KEYS[1] child execution record (hash)   KEYS[2] child history (list)
-- ARGV[1] history chunk ('' for none)   ARGV[2] retention in seconds
-- ARGV[3] the finished record as a JSON object of field -> string (status, output or error, state, ...)
-- Returns {1} when written, {0, status} if the child exists already (a drive repeated after a crash).
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('HGET', KEYS[1], 'status')} end
local fields = {}
for k, v in pairs(cjson.decode(ARGV[3])) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[1] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[1]) end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[2], ttl) end
end
return {1}
