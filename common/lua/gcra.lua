-- gcra.lua: admit one request against its GCRA buckets and the running-executions cap, all or nothing.
-- KEYS[1] .. KEYS[n]  the request's GCRA buckets (string: theoretical arrival time, microseconds of the Redis clock)
-- KEYS[n+1]   the account's running-executions counter (only read when ARGV[2] > 0)
-- KEYS[last]  optional: the request's SignatureNonce key (keys.signature_nonce), when ARGV[3+2n] is given
-- ARGV[1]     n, how many buckets
-- ARGV[2]     the running-executions cap; 0 = no cap check
-- ARGV[1+2i], ARGV[2+2i]  bucket i: emission interval (microseconds per request), burst (requests)
-- ARGV[3+2n]  optional: how long to remember the nonce (ms); the nonce is spent first, whatever follows
-- Returns {0, 0}      admitted: every bucket charged one request
--         {1, ms}     throttled: a retry passes after ms milliseconds; nothing charged
--         {2, count}  the account runs `count` executions, at or over the cap; nothing charged
--         {3, 0}      the nonce was used before (a replay): nothing charged
-- The front door sends this in one round trip with the request's other reads; with n = 0 and no cap
-- it only spends the nonce (a request its policy denies: the limiter is not charged for it).
-- The clock is Redis TIME: the one clock every front door shares, whatever their own clocks say.
-- Redis 6.2 replicates scripts verbatim unless told otherwise, and refuses writes after TIME then.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local nonce_ttl = ARGV[3 + 2 * n]
if nonce_ttl and not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', nonce_ttl) then return {3, 0} end
local wait = 0
local tats = {}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end  -- a full bucket holds no more than `burst`
  local new_tat = tat + interval
  local over = new_tat - now - burst * interval  -- microseconds until this request would conform
  if over > wait then wait = over end
  tats[i] = new_tat
end
if wait > 0 then return {1, math.ceil(wait / 1000)} end
local cap = tonumber(ARGV[2])
if cap > 0 then
  local running = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if running >= cap then return {2, running} end
end
for i = 1, n do
  -- Once now passes the TAT the bucket is full again, which is what a missing key means.
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', string.format('%d', ttl))
end
return {0, 0}
