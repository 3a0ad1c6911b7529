//! Clients whose retries take milliseconds, for tests that make the server
//! fail: a retry waits 1 ms, doubling up to 5 ms, instead of seconds.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::time::Duration;

use cio_emulator::DEFAULT_SITE_ID;
use cio_ratelimit::{
    ApiClass, Client, Limiter, RetryPolicy, limit::Unlimited, retry::RetryPolicyBuilder,
};

/// Retries up to `max_retries` times, 1 ms after a failure, doubling up to 5 ms.
pub fn quick_retries(max_retries: u32) -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .max_retries(max_retries)
}

/// A Track client of the emulator's default site, with `api_key`, sending
/// to `url` through `limiter`, retrying by `retries`.
pub fn track_client(
    url: &str,
    api_key: &str,
    limiter: impl Limiter + 'static,
    retries: RetryPolicyBuilder,
) -> Client {
    Client::builder(DEFAULT_SITE_ID, api_key)
        .track_url(url)
        .limiter(ApiClass::Track, limiter)
        .retry_policy(retries.build().unwrap())
        .build()
        .unwrap()
}

/// A Pipelines client with the source key `key`, sending to `url` without
/// a rate of its own, retrying up to `max_retries` times.
pub fn pipelines_client(url: &str, key: &str, max_retries: u32) -> Client {
    Client::builder_without_credentials()
        .pipelines_key(key)
        .pipelines_url(url)
        .limiter(ApiClass::Pipelines, Unlimited::new())
        .retry_policy(quick_retries(max_retries).build().unwrap())
        .build()
        .unwrap()
}
