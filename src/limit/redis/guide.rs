//! How a [`RedisLimiter`](super::RedisLimiter) works, and why: a page to
//! read once, apart from the type's own docs. Nothing here is code.
//!
//! # How it works
//!
//! The same log as [`SlidingWindow`](crate::SlidingWindow)'s, kept in Redis
//! (keys `cio-ratelimit:{workspace}:{class}`, `…:open` and `…:answered`) and
//! timed by the Redis server's clock, so machines need not agree on the
//! time: a request counts from its grant until its answer comes
//! ([`answered`](crate::Limiter::answered), which a `Client` reports after every
//! attempt) and for one window more; a grant whose answer never comes (a
//! process killed mid-request) counts for the window and a margin of 2 %
//! of it after the grant. A permit is granted while fewer than N are
//! counted, paced N per window with bursts of up to the limit's burst.
//! Each operation is one atomic Lua script and one round trip; a caller
//! that cannot be granted now is told how long to wait, sleeps in its own
//! process and asks again. Reporting an answer is one more round trip.
//!
//! [`pause_for`](super::RedisLimiter::pause_for), which a client calls on a 429,
//! grants nothing to anyone sharing the key, in any process, until the
//! pause ends; then permits resume paced, with no burst.
//!
//! Every process sharing a key must use the same [`RateLimit`](crate::RateLimit) and window.
//! It needs Redis 5 or later, or Valkey, reached directly (not through
//! Redis Cluster's redirects).
//!
//! # TLS
//!
//! A `rediss://` URL connects over TLS (rustls), as managed Redis services
//! (ElastiCache in transit, Upstash, Redis Cloud, Azure Cache) require, and
//! checks the server's certificate against the system's root certificates,
//! or against a private CA given to [`trust_ca`](super::RedisLimiterBuilder::trust_ca).
//! Certificate checks cannot be turned off.
//!
//! # Learning the real limit, together
//!
//! As [`SlidingWindow`](crate::SlidingWindow) does in one process, and with
//! the same law, the processes sharing a key learn the workspace's real
//! limit from its 429s, once for all of them (turn it off with
//! [`learning(false)`](super::RedisLimiterBuilder::learning)):
//!
//! - Each process tells Redis what the server accepted
//!   ([`record_success`](crate::Limiter::record_success)) with its next request
//!   for a permit, so Redis knows the shared delivery, counted by its clock
//!   in buckets of a hundredth of the [window](super::RedisLimiterBuilder::window).
//! - On a 429 ([`throttled`](crate::Limiter::throttled)) the law of
//!   [`SlidingWindow`](crate::SlidingWindow) reads what the server accepted
//!   from all of them in the trailing window: the server's rate (less 2 %
//!   headroom) when it admitted less than they sent, 0.6 × the rate when
//!   they were sending the whole rate (senders outside Redis took the
//!   room), at most 0.7 × the rate in the first window of the process that
//!   met it. Never below a twentieth of the configured rate. The learned
//!   rate lives in Redis beside the budget (key `{key}:rate`) and is
//!   written compare-and-set: 429s that several processes meet in one
//!   overload count once. Below the configured rate permits are spaced
//!   evenly, with no burst.
//! - Every process reads the learned rate with each permit it takes, in the
//!   same round trip, so the others follow at once, without 429s of their
//!   own.
//! - Without a 429, one process raises it for all along the law's curve
//!   (see [`SlidingWindow`](crate::SlidingWindow)): after congestion from the
//!   second window, after the server's rate once
//!   [`probe_after`](super::RedisLimiterBuilder::probe_after) (12 s) has
//!   passed, up to the configured rate and never above it.
//!
//! Each process shows the changes it saw in
//! [`rate_changes`](crate::Limiter::rate_changes). A process that does not learn
//! keeps its configured rate whatever the others learned. What was learned
//! expires a minute after the last grant.
//!
//! # Shared settings
//!
//! Every process records the rate, burst and window it uses beside the
//! shared state (key `{key}:settings`, e.g. `rate=80/s burst=10 window=1s`;
//! `rate=80/s burst=10`, as earlier releases recorded it, means a window of
//! 1 s) and holds a lease on them (key `{key}:sharers`), renewed every 10 s
//! while it sends. The settings live as long as the last lease: the last
//! limiter of a process gives its lease back when it is dropped, so once
//! every sharer has stopped, a new rate is accepted at once; a process that
//! died holds its lease for 30 s more. The learned rate is not a setting:
//! processes with the same settings share it. A process whose settings
//! differ from those leased is refused: [`connect`](super::RedisLimiter::connect)
//! and [`check`](super::RedisLimiter::check) return
//! [`Error::SharedSettingsMismatch`](crate::Error::SharedSettingsMismatch) naming both, and it grants nothing,
//! unless it was built to
//! [`adopt_shared_settings`](super::RedisLimiterBuilder::adopt_shared_settings).
//!
//! # When Redis refuses, or cannot be reached
//!
//! A Redis that answers but refuses the limiter (a wrong password,
//! `NOAUTH`, a database it does not have, a certificate that is not
//! trusted, something that does not speak Redis, a key that holds
//! something else) is a setting to fix, not an outage: the limiter lets
//! its callers go at once without a permit, whatever [`WhenUnreachable`](super::WhenUnreachable)
//! says, and [`connect`](super::RedisLimiter::connect) and
//! [`check`](super::RedisLimiter::check) fail with [`Error::RedisRefused`](crate::Error::RedisRefused), naming
//! the setting (`redis_url` or `trust_ca`). A `Client` then fails its
//! requests without sending them, as it does for any error that trying
//! again will not fix.
//!
//! A Redis that cannot be connected to, or whose connection is lost,
//! is away. Connecting and each command time out after 1 s
//! ([`timeout`](super::RedisLimiterBuilder::timeout)); then, as configured with
//! [`WhenUnreachable`](super::WhenUnreachable), callers either wait for Redis, retrying with backoff
//! (the default: the budget is never overspent), wait at most a set time and
//! then fail their requests without sending them (for jobs that must end),
//! or fall back to a local bucket at a share of the rate until Redis answers
//! again. The first failure
//! of an outage is logged with `log::warn!`, the recovery with `log::info!`;
//! the Redis password never appears in logs, errors or `Debug`. A pause that
//! cannot reach Redis still holds this process.
//!
//! Every wait (for Redis, a pause or a permit) ends within 100 ms once the
//! flag given to [`stop_when`](super::RedisLimiterBuilder::stop_when) is set: the
//! caller goes without a permit and [`check`](super::RedisLimiter::check) fails
//! with [`Error::Stopped`](crate::Error::Stopped).
