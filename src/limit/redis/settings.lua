-- The settings beside RedisLimiter's shared state (src/limit/redis/):
-- every process records the rate, burst and window it schedules with, so
-- that one whose settings differ is noticed instead of silently sharing the
-- key, and holds a lease on them while it shares the key. The settings live
-- as long as the last lease: a process that stops gives its lease back, one
-- that dies loses it when it runs out.
--
-- KEYS[1]  the settings key, `{state key}:settings`
-- KEYS[2]  the leases, `{state key}:sharers`: a sorted set of processes,
--          scored by when their lease runs out (microseconds, server clock)
-- ARGV[1]  the operation: "register" or "release"
-- ARGV[2]  this process's name among the sharers
-- ARGV[3]  (register) this process's settings, e.g. "rate=80/s burst=10 window=1s"
-- ARGV[4]  (register) milliseconds its lease lasts unless renewed
--
-- register: records ARGV[3] and renews the lease when nothing is recorded,
-- the same is, or no lease on what is recorded is left; returns what is
-- recorded, which differs from ARGV[3] when another process set it (then no
-- lease is taken).
-- release: gives the lease back; with the last lease the settings go.
-- Returns the number of leases left.

local settings_key, sharers_key = KEYS[1], KEYS[2]
local op, sharer = ARGV[1], ARGV[2]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- The settings and the leases live until the last lease runs out.
local function keep()
  local last = redis.call('ZRANGE', sharers_key, -1, -1, 'WITHSCORES')
  if not last[2] then
    redis.call('DEL', settings_key, sharers_key)
    return 0
  end
  local left_ms = math.max(math.ceil((tonumber(last[2]) - now) / 1000), 1)
  redis.call('PEXPIRE', settings_key, left_ms)
  redis.call('PEXPIRE', sharers_key, left_ms)
  return redis.call('ZCARD', sharers_key)
end

redis.call('ZREMRANGEBYSCORE', sharers_key, '-inf', now)

if op == 'release' then
  redis.call('ZREM', sharers_key, sharer)
  if redis.call('EXISTS', settings_key) == 0 then
    return 0
  end
  return keep()
end

local ours, lease_ms = ARGV[3], tonumber(ARGV[4])
local stored = redis.call('GET', settings_key)
local leased = redis.call('ZCARD', sharers_key) > 0
-- Settings with no lease on them were recorded by an earlier release,
-- which only let them expire: they hold while they last.
local unleased = stored and not leased and redis.call('PTTL', settings_key)
if stored and stored ~= ours and (leased or unleased > 0) then
  return stored
end
redis.call('SET', settings_key, ours)
redis.call('ZADD', sharers_key, now + lease_ms * 1000, sharer)
keep()
return ours
