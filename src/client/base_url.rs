//! Base URLs: a region's hosts or the caller's own, checked before any key is sent.

use std::net::IpAddr;

use crate::error::{Error, Result, redact_url};
use crate::region::Region;

impl std::str::FromStr for Region {
    type Err = Error;

    /// `us` or `eu`, in any case.
    fn from_str(text: &str) -> Result<Region> {
        match text.to_ascii_lowercase().as_str() {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            _ => Err(Error::invalid("region", text, "us or eu")),
        }
    }
}

/// Checks a base URL and returns it without a trailing slash.
///
/// `https://` is always accepted; plain `http://` only for a loopback host
/// (an emulator or a local proxy), unless `allow_http` is set, so that keys
/// are never sent in clear by accident.
///
/// A URL with a user name or password in it is refused, and the error shows
/// it with them replaced by `***`.
pub(crate) fn base_url(setting: &'static str, url: &str, allow_http: bool) -> Result<String> {
    let url = url.trim_end_matches('/');
    let shown = redact_url(url);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::invalid(setting, &shown, "an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_of(authority);
    if host.is_empty() || authority.contains('@') || rest.contains(['?', '#']) {
        return Err(Error::invalid(
            setting,
            &shown,
            "an http(s)://host[:port][/path] URL without credentials",
        ));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(url.to_owned()),
        "http" if allow_http || is_loopback(host) => Ok(url.to_owned()),
        "http" => Err(Error::invalid(
            setting,
            &shown,
            "https://, or http:// only for a loopback host (keys would travel in clear); allow_http(true) overrides",
        )),
        _ => Err(Error::invalid(
            setting,
            &shown,
            "an http:// or https:// URL",
        )),
    }
}

/// The host of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_have_their_own_hosts() {
        assert_eq!(Region::Us.track_url(), "https://track.customer.io");
        assert_eq!(Region::Eu.track_url(), "https://track-eu.customer.io");
        assert_eq!(Region::Us.app_url(), "https://api.customer.io");
        assert_eq!(Region::Eu.app_url(), "https://api-eu.customer.io");
        assert_eq!(Region::Us.pipelines_url(), "https://cdp.customer.io");
        assert_eq!(Region::Eu.pipelines_url(), "https://cdp-eu.customer.io");
        assert_eq!("EU".parse::<Region>().unwrap(), Region::Eu);
        assert!("mars".parse::<Region>().is_err());
    }

    #[test]
    fn https_is_always_accepted_and_trailing_slashes_dropped() {
        assert_eq!(
            base_url("u", "https://proxy.example.com/cio/", false).unwrap(),
            "https://proxy.example.com/cio"
        );
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9000",
            "http://127.3.4.5",
        ] {
            assert!(base_url("u", ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://track.customer.io",
            "http://10.0.0.1:80",
            "http://localhost.evil.com",
        ] {
            assert!(
                matches!(
                    base_url("u", refused, false),
                    Err(Error::InvalidConfig { setting: "u", .. })
                ),
                "{refused}"
            );
            assert!(base_url("u", refused, true).is_ok(), "{refused}");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "",
            "track.customer.io",
            "ftp://x",
            "https://",
            "https://user:pw@host",
            "https://h?q=1",
        ] {
            assert!(base_url("u", bad, true).is_err(), "{bad}");
        }
    }

    /// Regression: `https://u:pw@host` was refused with the password in the error.
    #[test]
    fn credentials_in_a_url_are_refused_without_being_shown() {
        for url in [
            "https://u:pw@host",
            "http://u:pw@10.0.0.1",
            "ftp://u:pw@host",
        ] {
            let error = base_url("track_url", url, false).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("pw") && shown.contains("://***@"),
                "{shown}"
            );
        }
    }
}
