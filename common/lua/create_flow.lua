-- create_flow.lua: create a flow if its name is free in the account.
-- KEYS[1] flow hash   KEYS[2] the account's flow index (zset)
-- ARGV[1] flow name   ARGV[2..] field, value pairs
-- Returns 1 when created, 0 if the name is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
