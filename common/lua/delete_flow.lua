-- delete_flow.lua: remove a flow, its versions, its aliases and its index entry.
-- KEYS[1] flow hash   KEYS[2] the account's flow index   KEYS[3] versions hash   KEYS[4] aliases hash
-- ARGV[1] flow name
-- Returns 1 when deleted, 0 if there was no such flow.
local gone = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
return gone
