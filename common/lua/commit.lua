-- commit.lua: write one drive's result atomically, if the driver still holds the lease.
-- Python side: common/driverscripts.py (Commit.argv builds this ARGV).
-- KEYS[1] execution record   KEYS[2] inbox   KEYS[3] history   KEYS[4] lease
-- KEYS[5] optional: the children hash (keys.children), deleted when the execution ends (the children
--         its tasks waited for were stopped with those tasks)
-- KEYS[6] optional: the tasks hash (keys.tasks), which expires with the record when the execution ends
--         (a report until then answers TaskAlreadyCompleted; reopen.lua undoes the expiry)
-- ARGV[1] fencing token of the acquire (common/driverscripts.py)
-- ARGV[2] how many inbox events the drive consumed (removed from the head)
-- ARGV[3] the new interpreter state (JSON)
-- ARGV[4] history chunk to append (JSON array), or '' for none
-- ARGV[5] history length after this chunk
-- ARGV[6] retention in seconds if the execution ended (keys then expire), else 0
-- ARGV[7] channel to publish the tag on if the execution ended and someone long-polls it (keys.DONE_CHANNEL)
-- ARGV[8] the execution tag
-- ARGV[9..] more field, value pairs for the record (status, output, stopped, error, cause)
-- Returns -1 if the fence was lost (nothing of the drive written), else the number of inbox events left.
-- Either way the record's `dq` mark (a drive is queued, append.lua) is cleared: an event that came
-- while the lease was held published no drive and is among those left (the driver goes round again),
-- and the next event publishes one, whether or not this driver goes on. Not when the execution ends
-- (ARGV[6] > 0): no event joins an ended execution (every appender checks the status first), and
-- reopen.lua sets the mark afresh; one call less for every execution (issue 17).
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'dq')
  return -1
end
local consumed = tonumber(ARGV[2])
-- Only drivers remove from the inbox, under the lease: what is left is what came after the read.
local left = redis.call('LLEN', KEYS[2]) - consumed
if left < 0 then left = 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'hseq', ARGV[5], unpack(ARGV, 9))
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[4]) end
local ttl = tonumber(ARGV[6])
if left == 0 then
  -- the inbox is empty now: it goes with the lease (and, at the end, the children hash) in one DEL
  if ttl > 0 and KEYS[5] then
    redis.call('DEL', KEYS[4], KEYS[2], KEYS[5])
  else
    redis.call('DEL', KEYS[4], KEYS[2])
  end
else
  if consumed > 0 then redis.call('LTRIM', KEYS[2], consumed, -1) end
  if ttl > 0 and KEYS[5] then
    redis.call('DEL', KEYS[4], KEYS[5])
  else
    redis.call('DEL', KEYS[4])
  end
end
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  if KEYS[6] then redis.call('EXPIRE', KEYS[6], ttl) end
  if left > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
  -- the watch mark says how the waiter listens: '1' PUBLISH on ARGV[7]; 's' SPUBLISH on the execution's
  -- own channel ARGV[7]:{tag}, in its slot (keys.done_channel), PUBLISH if this server has none
  local watch = redis.call('HGET', KEYS[1], 'watch')
  if watch == 's' then
    local sent = redis.pcall('SPUBLISH', ARGV[7] .. ':{' .. ARGV[8] .. '}', ARGV[8])
    if type(sent) == 'table' and sent.err then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
  elseif watch then
    redis.call('PUBLISH', ARGV[7], ARGV[8])
  end
end
if ttl == 0 then redis.call('HDEL', KEYS[1], 'dq') end
return left
