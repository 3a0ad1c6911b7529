//! A limiter that lets everything through and calls a hook before each
//! request: a test can make the server fail at a known request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cio_emulator::{Emulator, Faults};
use cio_ratelimit::{Limiter, limit::Unlimited};

/// A limiter that lets everything through (pauses aside) and calls `hook`
/// with each request's number before it goes: a test can make the server fail
/// at a known request, or make one request fail, whatever the timing.
pub struct OnRequest {
    hook: Box<dyn Fn(u64) + Send + Sync>,
    seen: AtomicU64,
    inner: Unlimited,
}

impl OnRequest {
    pub fn new(hook: impl Fn(u64) + Send + Sync + 'static) -> OnRequest {
        OnRequest {
            hook: Box::new(hook),
            seen: AtomicU64::new(0),
            inner: Unlimited::new(),
        }
    }

    /// From request `n` on, `emulator` answers 503 to everything: an outage
    /// that starts at a known point of the import, whatever the timing.
    pub fn outage_from(emulator: Arc<Emulator>, n: u64) -> OnRequest {
        OnRequest::new(move |seen| {
            if seen == n {
                emulator.set_faults(Faults::default().unavailable(1.0));
            }
        })
    }
}

impl std::fmt::Debug for OnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnRequest")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Limiter for OnRequest {
    fn acquire(&self) {
        (self.hook)(self.seen.fetch_add(1, Ordering::SeqCst) + 1);
        self.inner.acquire();
    }
    fn try_acquire(&self) -> bool {
        self.acquire();
        true
    }
    fn acquire_timeout(&self, _: Duration) -> bool {
        self.acquire();
        true
    }
    fn pause_for(&self, duration: Duration) {
        self.inner.pause_for(duration)
    }
}
