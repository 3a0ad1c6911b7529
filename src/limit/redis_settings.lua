-- The settings beside RedisLimiter's shared state (src/limit/redis_limiter.rs):
-- every process records the rate and burst it schedules with, so that one
-- whose settings differ is noticed instead of silently sharing the key.
--
-- KEYS[1]  the settings key, `{state key}:settings`
-- ARGV[1]  this process's settings, e.g. "rate=80/s burst=10"
-- ARGV[2]  milliseconds they live on unless a process records them again
--
-- Records ARGV[1] when nothing is recorded, or the same is; returns what is
-- recorded, which differs from ARGV[1] when another process set it.

local stored = redis.call('GET', KEYS[1])
if not stored or stored == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return stored
