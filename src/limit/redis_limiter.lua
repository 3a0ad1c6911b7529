-- The shared half of RedisLimiter (src/redis_limiter.rs): the generic cell
-- rate algorithm (virtual scheduling) on one hash per workspace and API class,
-- timed by the Redis server's clock. One script, so that every operation is
-- atomic; callers sleep in their own process, never in Redis.
--
-- KEYS[1]   the bucket's hash
-- ARGV[1]   the operation: "reserve", "check", "pause", "measure" or "learn"
-- ARGV[2]   interval: microseconds between permits at the configured rate
-- ARGV[3]   tolerance: interval * (burst - 1)
-- ARGV[4]   milliseconds the hash outlives its last scheduled permit
-- ARGV[5]   the window, in microseconds, over which accepted answers count
-- ARGV[6]   the configured limit: permits per window
-- ARGV[7]   1 if the caller follows the learned limit, 0 if its rate is fixed
-- ARGV[8..] the operation's own arguments
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
--   resume      when the last pause ends: slots laid out again at a learned
--               interval (longer than the one the pause moved them by) never
--               fall inside it
-- Lua numbers are doubles; microseconds since 1970 stay exact below 2^53.
--
-- Beside it, the learning every process shares (src/limit/learning.rs's
-- Course, which the processes compute; this script only stores it):
--   {key}:rate      gen (bumped by every write: compare-and-set), limit
--                   (permits per window), quiet, hold, probe (-1: none),
--                   step, settled, and measured (what the server had
--                   accepted at the last 429, -1 after a probe). Times are
--                   nanoseconds of the server's clock, stored as given.
--   {key}:accepted  answers the server accepted, reported by the processes
--                   with their next call, counted in buckets of 1/100 of
--                   the window by the server's clock.
-- While a learned limit below the configured one is in force, permits are
-- spaced at window / limit with no burst.

local key = KEYS[1]
local op = ARGV[1]
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local linger_ms = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local ceiling = tonumber(ARGV[6])
local following = ARGV[7] == '1'
local rate_key = key .. ':rate'
local accepted_key = key .. ':accepted'
local bucket = math.max(math.floor(window / 100), 1)
local course_fields = {'limit', 'quiet', 'hold', 'probe', 'step', 'settled', 'measured'}

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

if following then
  local learned = tonumber(redis.call('HGET', rate_key, 'limit'))
  if learned and learned >= 1 and learned < ceiling then
    interval = math.ceil(window / learned)
    tolerance = 0
  end
end

-- Adds answers accepted since the caller's last call.
local function note_accepted(count)
  if count > 0 then
    redis.call('HINCRBY', accepted_key, math.floor(now / bucket), count)
    redis.call('PEXPIRE', accepted_key, math.ceil(window / 1000) + linger_ms)
  end
end

-- Answers accepted in the window before now; forgets older buckets.
local function count_accepted()
  local first = math.floor((now - window) / bucket)
  local all = redis.call('HGETALL', accepted_key)
  local sum = 0
  for i = 1, #all, 2 do
    if tonumber(all[i]) >= first then
      sum = sum + tonumber(all[i + 1])
    else
      redis.call('HDEL', accepted_key, all[i])
    end
  end
  return sum
end

-- The shared course: {gen, limit, quiet, hold, probe, step, settled,
-- measured}, or {0} when nothing was learned yet.
local function course()
  local gen = redis.call('HGET', rate_key, 'gen')
  if not gen then
    return {0}
  end
  local answer = {gen}
  local values = redis.call('HMGET', rate_key, unpack(course_fields))
  for i = 1, #values do
    answer[i + 1] = values[i] or '0'
  end
  return answer
end

local function append(list, more)
  for i = 1, #more do
    list[#list + 1] = more[i]
  end
  return list
end

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
  -- ARGV[8]: the longest the caller will wait, or -1 for as long as it takes;
  -- ARGV[9]: answers the caller's process saw accepted since it last said.
  -- Returns {1, wait, slot, issued, version, epoch} followed, for a caller
  -- that follows the learned limit, by the shared course; or {0, wait}
  -- having reserved nothing.
  note_accepted(tonumber(ARGV[9]))
  if redis.call('HLEN', accepted_key) > 200 then
    count_accepted()
  end
  local max_wait = tonumber(ARGV[8])
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
  local answer = {1, slot - now, slot, issued, version, epoch or now}
  if following then
    -- Followers keep what was learned alive as long as the budget.
    redis.call('PEXPIRE', rate_key, math.ceil(math.max(tat - now, 0) / 1000) + linger_ms)
    append(answer, course())
  end
  return answer
end

if op == 'check' then
  -- A waiter woke up. ARGV[8..12]: its slot, `issued` right after its
  -- reservation, the version and epoch it last saw, and its deadline (-1 for
  -- none). Returns {1} to go, {0, wait, slot, version} to sleep and check
  -- again, {2} if a pause pushed it past its deadline (its permit given back
  -- when nobody reserved after it), or {3} if its reservation is gone.
  local slot = tonumber(ARGV[8])
  local last = tonumber(ARGV[9])
  local seen_version = tonumber(ARGV[10])
  local seen_epoch = tonumber(ARGV[11])
  local deadline = tonumber(ARGV[12])
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
    slot = math.max(slot, tonumber(redis.call('HGET', key, 'resume')) or 0)
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
  -- ARGV[8]: microseconds during which nothing is granted. Every slot not yet
  -- due moves by the same amount, keeping order and spacing, to the end of
  -- the pause or later; the bucket is left empty so that nothing bursts out
  -- when it ends. A shorter pause never shortens a longer one.
  -- Returns {1} if slots moved, {0} if an earlier pause already covers it.
  local resume = now + tonumber(ARGV[8])
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
  local resumed = tonumber(redis.call('HGET', key, 'resume')) or 0
  redis.call('HSET', key, 'resume', math.max(resume, resumed))
  return {1}
end

if op == 'measure' then
  -- A 429. ARGV[8]: answers the caller's process saw accepted since it
  -- last said. Returns {now, accepted in the window before now} followed by
  -- the shared course.
  note_accepted(tonumber(ARGV[8]))
  return append({now, count_accepted()}, course())
end

if op == 'learn' then
  -- Compare-and-set of the shared course. ARGV[8]: the gen the caller
  -- computed from; ARGV[9..15]: the new course, in course_fields' order.
  -- Returns {1, the new gen} if it was stored, or {0} followed by the
  -- course another process stored meanwhile.
  local gen = tonumber(redis.call('HGET', rate_key, 'gen')) or 0
  if gen ~= tonumber(ARGV[8]) then
    return append({0}, course())
  end
  local fields = {'gen', gen + 1}
  for i = 1, #course_fields do
    append(fields, {course_fields[i], ARGV[8 + i]})
  end
  redis.call('HSET', rate_key, unpack(fields))
  redis.call('PEXPIRE', rate_key, linger_ms)
  return {1, gen + 1}
end

return redis.error_reply('unknown operation ' .. tostring(op))
