-- The shared half of RedisLimiter (src/limit/redis/): the same
-- "at most N requests in any window" as SlidingWindow
-- (src/limit/sliding_window.rs), on a log of grants and answers per
-- workspace and API class in Redis, timed by the Redis server's clock. One
-- script, so that every operation is atomic; callers sleep in their own
-- process, never in Redis.
--
-- KEYS[1]   the budget's hash
-- ARGV[1]   the operation: "take", "answer", "pause", "measure" or "learn"
-- ARGV[2]   the window, in microseconds
-- ARGV[3]   the configured limit: permits per window (the ceiling)
-- ARGV[4]   the burst: permits the pacer lets go back to back
-- ARGV[5]   the margin, in microseconds: how much longer than the window a
--           grant whose answer never comes is counted
-- ARGV[6]   milliseconds the keys outlive what they hold
-- ARGV[7]   1 if the caller follows the learned limit, 0 if its rate is fixed
-- ARGV[8..] the operation's own arguments
--
-- The budget, in microseconds of the server's clock:
--   {key}           hash: tat (the pacer's theoretical arrival time, GCRA),
--                   paused (when the last pause ends), seq (names grants)
--   {key}:open      sorted set: grants whose answer has not come, scored by
--                   when they were granted. Each counts until its answer
--                   comes, or for the window and the margin after its grant
--                   if none does (a process killed mid-request).
--   {key}:answered  sorted set: when answers came. Each counts for one
--                   window after it came: the request reached the server
--                   before its answer came, so no window of the server's
--                   holds more than the log does.
-- Answers are matched to grants in order, not to their own grant: the k-th
-- answer to come came no sooner than the k-th arrival, in any process.
-- A permit is granted when fewer than the limit in force are counted and
-- the pacer (N per window, bursts of up to the burst) lets it go.
-- Lua numbers are doubles; microseconds since 1970 stay exact below 2^53.
--
-- Beside it, the learning every process shares (src/limit/learning.rs's
-- Course, which the processes compute; this script only stores it):
--   {key}:rate      gen (bumped by every write: compare-and-set), limit
--                   (permits per window), quiet, since (when the limit
--                   started its hold), peak (where probing starts from),
--                   hold (how long it holds before probing), and measured (what
--                   the server had accepted at the last 429, -1 after a
--                   probe). Times are nanoseconds of the server's clock,
--                   stored as given.
--   {key}:accepted  answers the server accepted, reported by the processes
--                   with their next call, counted in buckets of 1/100 of
--                   the window by the server's clock.

local key = KEYS[1]
local op = ARGV[1]
local window = tonumber(ARGV[2])
local ceiling = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
local linger_ms = tonumber(ARGV[6])
local following = ARGV[7] == '1'
local open_key = key .. ':open'
local answered_key = key .. ':answered'
local rate_key = key .. ':rate'
local accepted_key = key .. ':accepted'
local bucket = math.max(math.floor(window / 100), 1)
local course_fields = {'limit', 'quiet', 'since', 'peak', 'hold', 'measured'}
local span = window + margin

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local limit = ceiling
if following then
  local learned = tonumber(redis.call('HGET', rate_key, 'limit'))
  if learned and learned >= 1 and learned < ceiling then
    limit = learned
  end
end
local interval = math.ceil(window / limit)
local tolerance = interval * (math.min(burst, limit) - 1)

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

-- The shared course: {gen, limit, quiet, since, peak, hold, measured}, or
-- {0} when nothing was learned yet.
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

local fields = redis.call('HMGET', key, 'tat', 'paused')
local tat = tonumber(fields[1]) or 0
local paused = tonumber(fields[2]) or 0

-- Keeps every key of the budget for as long as it holds something that
-- counts, and the linger after.
local function keep()
  local ahead_ms = math.ceil(math.max(tat - now, paused - now, 0) / 1000)
  local counted_ms = math.ceil(span / 1000)
  redis.call('PEXPIRE', key, ahead_ms + counted_ms + linger_ms)
  redis.call('PEXPIRE', open_key, counted_ms + linger_ms)
  redis.call('PEXPIRE', answered_key, counted_ms + linger_ms)
end

-- Forgets what no window at or after now counts.
local function expire()
  redis.call('ZREMRANGEBYSCORE', open_key, '-inf', now - span)
  redis.call('ZREMRANGEBYSCORE', answered_key, '-inf', now - window)
end

-- The earliest a permit can be granted, at or after now, and 1 if an
-- answer that comes meanwhile may free one sooner (SlidingWindow's
-- Earliest::AtOrSooner), else 0.
local function earliest()
  local paced = math.max(now, paused, tat - tolerance)
  local counted = redis.call('ZCARD', open_key) + redis.call('ZCARD', answered_key)
  local excess = counted + 1 - limit
  if excess <= 0 then
    return paced, 0
  end
  -- The excess-th of the two sorted lists of leaving times, merged.
  local answers = redis.call('ZRANGE', answered_key, 0, excess - 1, 'WITHSCORES')
  local opens = redis.call('ZRANGE', open_key, 0, excess - 1, 'WITHSCORES')
  local a, o = 2, 2
  local leaves, sooner = 0, 0
  for _ = 1, excess do
    local next_a = answers[a] and (tonumber(answers[a]) + window)
    local next_o = opens[o] and (tonumber(opens[o]) + span)
    if next_o and (not next_a or next_o < next_a) then
      leaves, sooner = next_o, 1
      o = o + 2
    elseif next_a then
      leaves, sooner = next_a, 0
      a = a + 2
    else
      break
    end
  end
  if sooner == 0 or leaves <= paced then
    return math.max(paced, leaves), 0
  end
  return leaves, 1
end

if op == 'take' then
  -- ARGV[8]: answers the caller's process saw accepted since it last said.
  -- Grants a permit now if one is free: returns {1, now}; else
  -- {0, now, microseconds to wait, 1 if an answer may free one sooner}.
  -- Either is followed, for a caller that follows the learned limit, by the
  -- shared course.
  note_accepted(tonumber(ARGV[8]))
  if redis.call('HLEN', accepted_key) > 200 then
    count_accepted()
  end
  expire()
  local at, sooner = earliest()
  local answer
  if at <= now then
    local seq = redis.call('HINCRBY', key, 'seq', 1)
    redis.call('ZADD', open_key, now, seq)
    tat = math.max(tat, now) + interval
    redis.call('HSET', key, 'tat', tat)
    keep()
    answer = {1, now}
  else
    answer = {0, now, at - now, sooner}
  end
  if following then
    -- Followers keep what was learned alive as long as the budget.
    redis.call('PEXPIRE', rate_key, math.ceil(span / 1000) + linger_ms)
    append(answer, course())
  end
  return answer
end

if op == 'answer' then
  -- An answer came (or a request failed without one): the oldest grant
  -- still open is answered, and counts for one window from now. Returns {1}.
  expire()
  local popped = redis.call('ZPOPMIN', open_key)
  local seq = popped[1] or ('a' .. redis.call('HINCRBY', key, 'seq', 1))
  redis.call('ZADD', answered_key, now, seq)
  -- Twice the most that may be counted: no answer still counted is dropped.
  local extra = redis.call('ZCARD', answered_key) - 2 * ceiling
  if extra > 0 then
    redis.call('ZREMRANGEBYRANK', answered_key, 0, extra - 1)
  end
  keep()
  return {1}
end

if op == 'pause' then
  -- ARGV[8]: microseconds during which nothing is granted, to anyone; after
  -- it, permits resume paced, without a burst. A shorter pause never
  -- shortens a longer one. Returns {1} if it lengthened the pause, else {0}.
  local resume = now + tonumber(ARGV[8])
  if resume <= paused then
    return {0}
  end
  paused = resume
  tat = math.max(tat, paused + tolerance)
  redis.call('HSET', key, 'tat', tat, 'paused', paused)
  keep()
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
  -- computed from; ARGV[9..14]: the new course, in course_fields' order.
  -- Returns {1, the new gen} if it was stored, or {0} followed by the
  -- course another process stored meanwhile.
  local gen = tonumber(redis.call('HGET', rate_key, 'gen')) or 0
  if gen ~= tonumber(ARGV[8]) then
    return append({0}, course())
  end
  local stored = {'gen', gen + 1}
  for i = 1, #course_fields do
    append(stored, {course_fields[i], ARGV[8 + i]})
  end
  redis.call('HSET', rate_key, unpack(stored))
  redis.call('PEXPIRE', rate_key, linger_ms)
  return {1, gen + 1}
end

return redis.error_reply('unknown operation ' .. tostring(op))
