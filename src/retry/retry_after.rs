//! Reading a `Retry-After` header (RFC 9110 §10.2.3).

use std::time::{Duration, SystemTime};

/// How long a `Retry-After` header value asks the client to wait.
///
/// Both RFC 9110 forms are understood: delta-seconds (`"120"`) and an
/// HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), which is measured from
/// `now`. A date in the past means "now" (zero). The result is clamped to
/// `ceiling`. Anything else — negative or fractional numbers, garbage, empty
/// text — gives `None`, and the caller falls back to its own backoff; this
/// never panics or overflows.
///
/// ```
/// use cio_ratelimit::retry::parse_retry_after;
/// use std::time::{Duration, SystemTime};
///
/// let ceiling = Duration::from_secs(60);
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after("3", now, ceiling), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("86400", now, ceiling), Some(ceiling));
/// assert_eq!(parse_retry_after("soon", now, ceiling), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime, ceiling: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is still "a very long time": clamp, don't reject.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILING: Duration = Duration::from_secs(60);

    fn at(unix_secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs)
    }

    #[test]
    fn delta_seconds() {
        let now = at(1_000_000);
        assert_eq!(parse_retry_after("0", now, CEILING), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("7", now, CEILING),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(" 12 ", now, CEILING),
            Some(Duration::from_secs(12))
        );
    }

    #[test]
    fn http_date_in_the_future_is_measured_from_now() {
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        let now = at(1_445_412_480 - 30);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, CEILING),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn http_date_obsolete_forms_are_accepted() {
        let now = at(1_445_412_480 - 5);
        for form in [
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse_retry_after(form, now, CEILING),
                Some(Duration::from_secs(5)),
                "{form}"
            );
        }
    }

    #[test]
    fn http_date_in_the_past_means_now() {
        let now = at(1_445_412_480 + 3600);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, CEILING),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn huge_values_are_clamped_not_overflowed() {
        let now = at(0);
        assert_eq!(parse_retry_after("3601", now, CEILING), Some(CEILING));
        assert_eq!(
            parse_retry_after(&u64::MAX.to_string(), now, CEILING),
            Some(CEILING)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999999999", now, CEILING),
            Some(CEILING)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now, CEILING),
            Some(CEILING)
        );
    }

    #[test]
    fn garbage_negative_and_fractional_values_fall_back() {
        let now = at(1_000_000);
        for garbage in [
            "",
            "   ",
            "-5",
            "1.5",
            "+3",
            "5s",
            "soon",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "0x10",
            "٣",
        ] {
            assert_eq!(
                parse_retry_after(garbage, now, CEILING),
                None,
                "{garbage:?}"
            );
        }
    }
}
