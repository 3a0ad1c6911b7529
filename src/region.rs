//! Customer.io's regions: which hosts a workspace answers on.

use std::fmt;

/// The data center a Customer.io workspace lives in. A workspace answers only
/// in its own region; the other one answers `301 wrong datacenter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    /// The United States: `track.customer.io`, `api.customer.io` and `cdp.customer.io`.
    #[default]
    Us,
    /// The European Union: `track-eu.customer.io`, `api-eu.customer.io` and
    /// `cdp-eu.customer.io`.
    Eu,
}

impl Region {
    /// The Track API's base URL in this region.
    pub fn track_url(&self) -> &'static str {
        match self {
            Region::Us => "https://track.customer.io",
            Region::Eu => "https://track-eu.customer.io",
        }
    }

    /// The App API's base URL in this region.
    pub fn app_url(&self) -> &'static str {
        match self {
            Region::Us => "https://api.customer.io",
            Region::Eu => "https://api-eu.customer.io",
        }
    }

    /// The Pipelines API's base URL in this region; calls go to `/v1/...` under it.
    pub fn pipelines_url(&self) -> &'static str {
        match self {
            Region::Us => "https://cdp.customer.io",
            Region::Eu => "https://cdp-eu.customer.io",
        }
    }

    /// The other region.
    pub fn other(&self) -> Region {
        match self {
            Region::Us => Region::Eu,
            Region::Eu => Region::Us,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Us => "us",
            Region::Eu => "eu",
        })
    }
}
