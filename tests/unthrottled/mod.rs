//! What the tests of the App API, manual segments and the other sends share:
//! an emulator that never throttles, a client for it that retries quickly and
//! does not wait on its own limiters, and a limiter that counts the permits a
//! class of calls asks for.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{ApiClass, Client, ClientBuilder, Limiter, RetryPolicy, limit::Unlimited};

/// An emulator started with `config`, its Track, transactional and App limits off.
pub fn emulator(config: Config) -> Emulator {
    let config = config.track_limit(0).transactional_limit(0).app_limit(0);
    Emulator::start(config).expect("emulator starts")
}

/// A client with Track and App credentials for `emulator`, quick retries,
/// and unlimited Track, transactional and App limiters (tests that count
/// permits put a [`Counting`] in place of one).
pub fn client_for(emulator: &Emulator) -> ClientBuilder {
    let quick = RetryPolicy::builder()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .build()
        .unwrap();
    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .app_key(DEFAULT_APP_KEY)
        .base_url(emulator.url())
        .retry_policy(quick)
        .limiter(ApiClass::Track, Unlimited::new())
        .limiter(ApiClass::Transactional, Unlimited::new())
        .limiter(ApiClass::App, Unlimited::new())
}

/// Grants every permit at once and counts them; clones share the count.
#[derive(Debug, Default, Clone)]
pub struct Counting(Arc<AtomicUsize>);

impl Counting {
    /// The permits asked for so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Limiter for Counting {
    fn acquire(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn try_acquire(&self) -> bool {
        self.acquire();
        true
    }
    fn acquire_timeout(&self, _: Duration) -> bool {
        self.try_acquire()
    }
    fn pause_for(&self, _: Duration) {}
}
