-- gcra_refund.lua: give back the one request gcra.lua charged to its buckets (a request found to be a
-- replay after it was admitted: the nonce lives in its own slot, spent in the same round trip).
-- KEYS[1] .. KEYS[n] the buckets, ARGV[1] n, ARGV[1+2i] bucket i's interval: as gcra.lua's.
local n = tonumber(ARGV[1])
for i = 1, n do
  local tat = redis.call('GET', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if tat and ttl > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', tonumber(tat) - tonumber(ARGV[1 + 2 * i])), 'PX', ttl)
  end
end
return 0
