-- adopt.lua: a parent execution takes a child it waits for into its children hash, while the task
-- that waits for the child still waits.
-- KEYS[1] the parent's execution record   KEYS[2] the parent's tasks hash (keys.tasks)
-- KEYS[3] the parent's children hash (keys.children: child tag -> the parent's task id)
-- ARGV[1] the child's execution tag   ARGV[2] the parent's task id (the token's)
-- Returns {1} adopted (cancelling the task stops the child); {0, status} the parent has ended (or is
-- being stopped: {0, 'Stopped'}, stop_child.lua), or {-2} its task no longer waits: nothing written,
-- the caller stops the child; {-1} no such parent.
-- Called after the child's claim. The dispatcher marks a cancelled task done and then reads the
-- hash in one pipeline: a cancel before this call is seen here, one after it finds the child.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'Succeeded' or status == 'Failed' or status == 'Stopped' or status == 'TimedOut' then
  return {0, status}
end
if redis.call('HEXISTS', KEYS[1], 'stopping') == 1 then return {0, 'Stopped'} end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= 'waiting' then return {-2} end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return {1}
