//! `ApiClass`: the budgets Customer.io keeps apart, each with its own limiter.

use crate::limit::rate_limit::RateLimit;

/// The API classes Customer.io limits separately; each has its own limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiClass {
    /// Track API calls: people, events, devices, v2 entity and batch.
    /// Default limit [`RateLimit::TRACK_API`].
    Track,
    /// Transactional sends (`/v1/send/email`, `/v1/send/push`, `/v1/send/sms`, ...).
    /// Default limit [`RateLimit::TRANSACTIONAL_API`].
    Transactional,
    /// Other App API calls: reads, exports. Default limit [`RateLimit::APP_API`].
    App,
    /// Broadcast triggers. Default limit [`RateLimit::BROADCAST_TRIGGERS`].
    Broadcast,
    /// Pipelines API calls (`/v1/identify`, ..., `/v1/batch`).
    /// Default limit [`RateLimit::PIPELINES_API`].
    Pipelines,
}

impl ApiClass {
    /// Every class, in declaration order.
    pub const ALL: [ApiClass; 5] = [
        ApiClass::Track,
        ApiClass::Transactional,
        ApiClass::App,
        ApiClass::Broadcast,
        ApiClass::Pipelines,
    ];

    /// The preset limit a client uses for this class unless told otherwise.
    pub fn default_limit(&self) -> RateLimit {
        match self {
            ApiClass::Track => RateLimit::TRACK_API,
            ApiClass::Transactional => RateLimit::TRANSACTIONAL_API,
            ApiClass::App => RateLimit::APP_API,
            ApiClass::Broadcast => RateLimit::BROADCAST_TRIGGERS,
            ApiClass::Pipelines => RateLimit::PIPELINES_API,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
