-- put_schedule.lua: create or update a schedule of an existing flow, atomically with the flow check.
-- KEYS[1] flow hash   KEYS[2] schedule hash   KEYS[3] the flow's schedule index (zset, scores 0)
-- ARGV[1] 'create' or 'update'   ARGV[2] the flow Id the caller resolved   ARGV[3] schedule name
-- ARGV[4] update: the `rev` the caller read (the change applies only if it is unchanged); create: ''
-- ARGV[5..] field, value pairs to set (at least one pair)
-- Returns {'ok', {field, value, ...}} with the whole schedule after the write, or
--         {'error', 'flow' | 'exists' | 'missing' | 'conflict'}.
if redis.call('HGET', KEYS[1], 'Id') ~= ARGV[2] then return {'error', 'flow'} end
local exists = redis.call('EXISTS', KEYS[2]) == 1
if ARGV[1] == 'create' then
  if exists then return {'error', 'exists'} end
else
  if not exists then return {'error', 'missing'} end
  if redis.call('HGET', KEYS[2], 'rev') ~= ARGV[4] then return {'error', 'conflict'} end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('HINCRBY', KEYS[2], 'rev', 1)
redis.call('ZADD', KEYS[3], 0, ARGV[3])
return {'ok', redis.call('HGETALL', KEYS[2])}
