-- publish_version.lua: snapshot a flow's current definition as its next version.
-- KEYS[1] flow hash   KEYS[2] flow index (unused)   KEYS[3] versions hash   KEYS[4] aliases (unused)
-- ARGV[1] created time (ms)   ARGV[2] description
-- Returns 0 if there is no such flow, else the new version number (1, 2, ...).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local def_id = redis.call('HGET', KEYS[1], 'DefId')
local version = redis.call('HINCRBY', KEYS[3], '#next', 1)
redis.call('HSET', KEYS[3], tostring(version), cjson.encode({
  Version = tostring(version), Description = ARGV[2], CreatedTime = ARGV[1], DefId = def_id,
}))
return version
