-- gcra_refund.lua: give back the one request gcra.lua charged to its buckets (a request found to be a
-- replay, or over the running cap, after it was admitted: the nonce and the running count live in slots
-- of their own, read in the same round trip).
-- KEYS[1] .. KEYS[n] the buckets, ARGV[1] n, ARGV[2i] bucket i's interval: as gcra.lua's.
local n = tonumber(ARGV[1])
for i = 1, n do
  local tat = redis.call('GET', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if tat and ttl > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', tonumber(tat) - tonumber(ARGV[2 * i])), 'PX', ttl)
  end
end
return 0
