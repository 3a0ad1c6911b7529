-- The shared half of RedisLimiter (src/redis_limiter.rs): the generic cell
-- rate algorithm (virtual scheduling) on one hash per workspace and API class,
-- timed by the Redis server's clock. One script, so that every operation is
-- atomic; callers sleep in their own process, never in Redis.
--
-- KEYS[1]   the bucket's hash
-- ARGV[1]   the operation: "reserve", "check" or "pause"
-- ARGV[2]   interval: microseconds between permits
-- ARGV[3]   tolerance: interval * (burst - 1)
-- ARGV[4]   milliseconds the hash outlives its last scheduled permit
-- ARGV[5..] the operation's own arguments
--
-- The hash mirrors TokenBucket's Schedule (src/token_bucket.rs), in
-- microseconds of the server's clock:
--   tat         theoretical arrival time: when the bucket would next be empty
--   issued      permits reserved so far
--   run_start   `issued` when the last caller was granted without waiting
--   changed_at  when a pause last moved the slots of waiting callers
--   version     bumped whenever that happens
--   epoch       when the hash was created: a reservation made before it (the
--               hash expired, or Redis lost its data) no longer exists
-- Lua numbers are doubles; microseconds since 1970 stay exact below 2^53.

local key = KEYS[1]
local op = ARGV[1]
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local linger_ms = tonumber(ARGV[4])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local fields = redis.call('HMGET', key, 'tat', 'issued', 'run_start', 'changed_at', 'version', 'epoch')
local epoch = tonumber(fields[6])
local tat = tonumber(fields[1]) or 0
local issued = tonumber(fields[2]) or 0
local run_start = tonumber(fields[3]) or 0
local changed_at = tonumber(fields[4]) or 0
local version = tonumber(fields[5]) or 0

local function save()
  redis.call('HSET', key, 'tat', tat, 'issued', issued, 'run_start', run_start,
    'changed_at', changed_at, 'version', version, 'epoch', epoch or now)
  local ahead_ms = math.ceil(math.max(tat - now, 0) / 1000)
  redis.call('PEXPIRE', key, ahead_ms + linger_ms)
end

if op == 'reserve' then
  -- ARGV[5]: the longest the caller will wait, or -1 for as long as it takes.
  -- Returns {1, wait, slot, issued, version, epoch}, or {0, wait} having
  -- reserved nothing.
  local max_wait = tonumber(ARGV[5])
  local slot = math.max(tat - tolerance, now)
  if max_wait >= 0 and slot - now > max_wait then
    return {0, slot - now}
  end
  tat = math.max(tat, slot) + interval
  issued = issued + 1
  if slot <= now then
    run_start = issued
  end
  save()
  return {1, slot - now, slot, issued, version, epoch or now}
end

if op == 'check' then
  -- A waiter woke up. ARGV[5..9]: its slot, `issued` right after its
  -- reservation, the version and epoch it last saw, and its deadline (-1 for
  -- none). Returns {1} to go, {0, wait, slot, version} to sleep and check
  -- again, {2} if a pause pushed it past its deadline (its permit given back
  -- when nobody reserved after it), or {3} if its reservation is gone.
  local slot = tonumber(ARGV[5])
  local last = tonumber(ARGV[6])
  local seen_version = tonumber(ARGV[7])
  local seen_epoch = tonumber(ARGV[8])
  local deadline = tonumber(ARGV[9])
  if epoch ~= seen_epoch then
    return {3}
  end
  if version ~= seen_version then
    if slot <= changed_at then
      -- Due before the slots moved: granted then, just woken late.
      return {1}
    end
    -- Waiting reservations sit back to back, one interval apart, ending one
    -- interval before tat minus the tolerance; a pause keeps that true.
    slot = tat - tolerance - (issued - last + 1) * interval
    if deadline >= 0 and slot > deadline then
      if issued == last then
        issued = issued - 1
        tat = tat - interval
        save()
      end
      return {2}
    end
  end
  if slot <= now then
    return {1}
  end
  return {0, slot - now, slot, version}
end

if op == 'pause' then
  -- ARGV[5]: microseconds during which nothing is granted. Every slot not yet
  -- due moves by the same amount, keeping order and spacing, to the end of
  -- the pause or later; the bucket is left empty so that nothing bursts out
  -- when it ends. A shorter pause never shortens a longer one.
  -- Returns {1} if slots moved, {0} if an earlier pause already covers it.
  local resume = now + tonumber(ARGV[5])
  local free = tat - tolerance
  local run_first = free - (issued - run_start) * interval
  local first_pending = now
  if run_first > now then
    first_pending = run_first
  elseif free > now then
    -- Part of the run is already due; the rest is one interval apart.
    first_pending = now + (free - now - 1) % interval + 1
  end
  local moved = math.max(tat + math.max(resume - first_pending, 0), resume + tolerance)
  if moved == tat then
    return {0}
  end
  tat = moved
  changed_at = now
  version = version + 1
  save()
  return {1}
end

return redis.error_reply('unknown operation ' .. tostring(op))
