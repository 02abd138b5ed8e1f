-- acquire.lua: a driver takes an execution's lease and reads everything it needs, in one call.
-- Python side: common/driverscripts.py (read_acquired; RECORD_FIELDS lists the fields below in order).
-- KEYS[1] execution record   KEYS[2] inbox   KEYS[3] history (unused, for uniform KEYS)   KEYS[4] lease
-- ARGV[1] lease time in milliseconds
-- ARGV[2] the fencing token: unique to this attempt (the driver draws it at random); commit.lua writes
--         only while the lease still holds it
-- Returns {-1} if there is no such execution, {0} if another driver holds the lease, else
--         {token, {status, state, defid, flow, name, acct, cb, hseq, tp}, {inbox events...}}
--         (tp: the traceparent its drives continue, common/tracing.py; false when tracing was off).
-- Taking the lease clears the record's `dq` mark (a drive is queued, append.lua): this driver reads
-- the whole inbox, and whatever arrives from now on is either in commit.lua's `left` or publishes anew.
-- One read of the record serves all: every record has a status (claim.lua writes it first), so a
-- missing one means no execution.
local rec = redis.call('HMGET', KEYS[1], 'status', 'state', 'defid', 'flow', 'name', 'acct', 'cb', 'hseq', 'tp', 'dq')
if not rec[1] then return {-1} end
if not redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[1]) then return {0} end
if rec[10] then redis.call('HDEL', KEYS[1], 'dq') end
rec[10] = nil
return {ARGV[2], rec, redis.call('LRANGE', KEYS[2], 0, -1)}
