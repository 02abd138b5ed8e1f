-- gcra.lua: admit one request against its GCRA buckets, all or nothing.
-- KEYS[1] .. KEYS[n]  the request's GCRA buckets (string: theoretical arrival time, microseconds of the Redis clock)
-- ARGV[1]     n, how many buckets
-- ARGV[2i], ARGV[2i+1]  bucket i: emission interval (microseconds per request), burst (requests)
-- Returns {0, 0}      admitted: every bucket charged one request
--         {1, ms}     throttled: a retry passes after ms milliseconds; nothing charged
-- The front door sends this in one round trip with the request's other reads (api/admission.py): the
-- SignatureNonce and the running-executions count (common/runcount.py; its shards live in slots of their
-- own, so the cap is judged from their sum beside this call, and a charge it refuses is given back with
-- gcra_refund.lua).
-- The clock is Redis TIME: the one clock every front door shares, whatever their own clocks say.
-- Redis 6.2 replicates scripts verbatim unless told otherwise, and refuses writes after TIME then.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local wait = 0
local tats = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[1 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end  -- a full bucket holds no more than `burst`
  local new_tat = tat + interval
  local over = new_tat - now - burst * interval  -- microseconds until this request would conform
  if over > wait then wait = over end
  tats[i] = new_tat
end
if wait > 0 then return {1, math.ceil(wait / 1000)} end
for i = 1, n do
  -- Once now passes the TAT the bucket is full again, which is what a missing key means.
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', string.format('%d', ttl))
end
return {0, 0}
