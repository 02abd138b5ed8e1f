-- put_alias.lua: create or update a flow alias routing to one or two existing versions.
-- KEYS[1] flow hash   KEYS[2] flow index (unused)   KEYS[3] versions hash   KEYS[4] aliases hash
-- ARGV[1] 'create' or 'update'   ARGV[2] alias name   ARGV[3] alias JSON (without times)
-- ARGV[4] now (ms)   ARGV[5..] the versions it routes to ('' means: keep the stored routing)
-- Returns {'ok', stored JSON} or {'error', what}: what is 'flow', 'exists', 'missing', or 'version:<v>'.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'error', 'flow'} end
local old = redis.call('HGET', KEYS[4], ARGV[2])
if ARGV[1] == 'create' and old then return {'error', 'exists'} end
if ARGV[1] == 'update' and not old then return {'error', 'missing'} end
for i = 5, #ARGV do
  if ARGV[i] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then return {'error', 'version:' .. ARGV[i]} end
end
local alias = cjson.decode(ARGV[3])
if old then
  local prev = cjson.decode(old)
  alias.CreatedTime = prev.CreatedTime
  if alias.Description == nil then alias.Description = prev.Description end
  if alias.RoutingConfigurations == nil then alias.RoutingConfigurations = prev.RoutingConfigurations end
else
  alias.CreatedTime = ARGV[4]
end
alias.LastModifiedTime = ARGV[4]
local stored = cjson.encode(alias)
redis.call('HSET', KEYS[4], ARGV[2], stored)
return {'ok', stored}
