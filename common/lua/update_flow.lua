-- update_flow.lua: change fields of an existing flow.
-- KEYS[1] flow hash
-- ARGV[1..] field, value pairs (at least one pair)
-- Returns 0 if there is no such flow, else the whole flow as HGETALL gives it.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return redis.call('HGETALL', KEYS[1])
