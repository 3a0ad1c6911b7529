//! Shared learning: what the processes sharing a key learned from 429s,
//! read with every permit and written compare-and-set, so that one overload
//! counts once.

use std::time::Duration;

use crate::limit::clock::{Clock, duration_nanos};
use crate::limit::learning::{Changes, Course, Law, RateChange, Throttle};

use super::limiter::RedisLimiter;

/// The shared learning, as this process last saw it in Redis.
pub(super) struct Following {
    /// Bumped by every write in Redis; 0 before the first.
    pub(super) generation: i64,
    pub(super) course: Course,
    pub(super) changes: Changes,
}

/// The shared learning as the script answers it.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    pub(super) generation: i64,
    pub(super) course: Course,
    /// What the server had accepted at the 429 that set the course; `None`
    /// after a probe.
    pub(super) measured: Option<u32>,
}

impl Seen {
    /// Reads the script's `{generation, limit, quiet, since, peak, hold,
    /// measured}`, or `{0}`: nothing learned yet.
    pub(super) fn read(answer: &[i64], law: &Law) -> Option<Seen> {
        let nanos = |value: i64| u64::try_from(value).ok();
        let permits = |value: i64| u32::try_from(value).ok();
        let rate = |value: i64| Some(permits(value)?.clamp(law.floor, law.ceiling));
        match *answer {
            [0] => Some(Seen {
                generation: 0,
                course: Course::new(law),
                measured: None,
            }),
            [generation, limit, quiet, since, peak, hold, measured] => Some(Seen {
                generation,
                course: Course {
                    limit: rate(limit)?,
                    quiet_until: nanos(quiet)?,
                    since: nanos(since)?,
                    peak: rate(peak)?,
                    hold: nanos(hold)?,
                },
                measured: permits(measured),
            }),
            _ => None,
        }
    }

    /// The arguments of the script's `learn`: the generation it was computed
    /// from, then the course.
    pub(super) fn args(&self) -> [i64; 7] {
        let signed = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let course = &self.course;
        [
            self.generation,
            i64::from(course.limit),
            signed(course.quiet_until),
            signed(course.since),
            i64::from(course.peak),
            signed(course.hold),
            self.measured.map_or(-1, i64::from),
        ]
    }
}

impl RedisLimiter {
    /// Runs the law on the shared course and stores what it changed,
    /// compare-and-set: when another process changed it first, the law
    /// runs again on theirs, where this 429 is usually already counted.
    pub(super) fn learn_from_429(&self, pause: Duration) -> std::result::Result<(), ()> {
        let law = self.shared.schedule.read().law;
        let (now, measured, mut seen) =
            self.run_reporting("measure", &[], |answer| match *answer {
                [now, measured, ref seen @ ..] => Some((
                    micros_to_nanos(now),
                    u32::try_from(measured).ok()?,
                    Seen::read(seen, &law)?,
                )),
                _ => None,
            })?;
        let pause = duration_nanos(pause);
        // Each round either stores, or sees another process's newer course.
        for _ in 0..4 {
            self.follow(seen);
            let mut course = seen.course;
            // The shared delivery is a measurement once this process has
            // been counting for a window.
            let young = self
                .shared
                .clock
                .now()
                .saturating_duration_since(self.shared.origin)
                < Duration::from_nanos(law.window);
            let throttle = course.throttled(&law, now, pause, measured, young);
            if throttle == Throttle::Counted {
                return Ok(());
            }
            match self.store(seen.generation, course, Some(measured))? {
                None => return Ok(()),
                Some(theirs) => seen = theirs,
            }
        }
        Ok(())
    }

    /// Probes above the shared limit if it is time: one process raises it
    /// for all, the others see it raised.
    pub(super) fn probe(&self, now: u64) {
        let law = self.shared.schedule.read().law;
        let (generation, mut course) = {
            let following = self.shared.following.lock();
            (following.generation, following.course)
        };
        if course.probe(&law, now) {
            // A failure is logged by the link; the next permit probes again.
            let _ = self.store(generation, course, None);
        }
    }

    /// Stores `course`, computed from `generation`, if nobody changed it since:
    /// `None` when stored, or the course another process stored.
    fn store(
        &self,
        generation: i64,
        course: Course,
        measured: Option<u32>,
    ) -> std::result::Result<Option<Seen>, ()> {
        let law = self.shared.schedule.read().law;
        let ours = Seen {
            generation,
            course,
            measured,
        };
        let stored = self.run("learn", &ours.args(), |answer| match *answer {
            [1, generation] => Some(Ok(generation)),
            [0, ref seen @ ..] => Some(Err(Seen::read(seen, &law)?)),
            _ => None,
        })?;
        match stored {
            Ok(generation) => {
                self.follow(Seen { generation, ..ours });
                Ok(None)
            }
            Err(theirs) => {
                self.follow(theirs);
                Ok(Some(theirs))
            }
        }
    }

    /// Takes on the shared course, telling the user when it changed the rate.
    pub(super) fn follow(&self, seen: Seen) {
        let law = self.shared.schedule.read().law;
        let mut following = self.shared.following.lock();
        if seen.generation == following.generation {
            return;
        }
        let from = following.course.limit;
        (following.generation, following.course) = (seen.generation, seen.course);
        if seen.course.limit != from {
            let at = self
                .shared
                .clock
                .now()
                .saturating_duration_since(self.shared.origin);
            following.changes.push(RateChange {
                at,
                from: law.per_second(from),
                to: law.per_second(seen.course.limit),
                throttled_at: seen
                    .measured
                    .filter(|_| seen.course.limit < from)
                    .map(|measured| law.per_second(measured)),
            });
        }
    }
}

/// Microseconds of the Redis server's clock as the law's nanoseconds.
pub(super) fn micros_to_nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::rate_limit::RateLimit;

    #[test]
    fn a_shared_course_reads_back_as_written_and_garbage_is_refused() {
        let limit = RateLimit::new(80.0, 10).unwrap();
        let law = Law::new(limit, None, None, Duration::from_secs(20), true).unwrap();
        let seen = Seen {
            generation: 3,
            course: Course {
                limit: 38,
                quiet_until: 1_700_000_000_000_000_000,
                since: 1_700_000_001_000_000_000,
                peak: 38,
                hold: 12_000_000_000,
            },
            measured: Some(40),
        };
        let args = seen.args();
        let read = Seen::read(&args, &law).unwrap();
        assert_eq!(
            (read.generation, read.course, read.measured),
            (3, seen.course, Some(40))
        );
        let nothing = Seen::read(&[0], &law).unwrap();
        assert_eq!((nothing.generation, nothing.course), (0, Course::new(&law)));
        let mut above = args;
        above[1] = 500;
        assert_eq!(
            Seen::read(&above, &law).unwrap().course.limit,
            80,
            "never above the ceiling"
        );
        assert!(Seen::read(&[1, 2, 3], &law).is_none());
        assert!(Seen::read(&[1, 2, 3, 4, 5, 6, 7, 8], &law).is_none());
        let mut negative = args;
        negative[2] = -5;
        assert!(Seen::read(&negative, &law).is_none());
    }
}
