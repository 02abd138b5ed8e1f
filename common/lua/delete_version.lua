-- delete_version.lua: delete a flow version unless an alias still routes to it.
-- KEYS[1] flow hash   KEYS[2] flow index (unused)   KEYS[3] versions hash   KEYS[4] aliases hash
-- ARGV[1] version
-- Returns {'ok'} or {'error', what}: 'flow', 'missing', or 'alias:<name>' (the alias using it).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'error', 'flow'} end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return {'error', 'missing'} end
local aliases = redis.call('HGETALL', KEYS[4])
for i = 1, #aliases, 2 do
  local routes = cjson.decode(aliases[i + 1]).RoutingConfigurations or {}
  for _, route in ipairs(routes) do
    if tostring(route.Version) == ARGV[1] then return {'error', 'alias:' .. aliases[i]} end
  end
end
redis.call('HDEL', KEYS[3], ARGV[1])
return {'ok'}
