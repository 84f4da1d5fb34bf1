//! The `Retry-After` header (RFC 9110 § 10.2.3): how long a rate-limited (429) or unavailable
//! (503) server asks a client to wait. One reading for everything that waits on one: the
//! engine's request steps (a run parks until then) and `para-connect`'s authorised requests
//! (waited for in the request when short enough). A pure function of the header's text and the
//! current time, so it lives in the pure engine, the lowest crate both can depend on.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for, measured from `now`; `None` when the value is
/// neither form (the caller's default applies: it is not a wait of zero).
///
/// - Delta-seconds, `120`: that many seconds. A decimal fraction (`1.5`, sent by some APIs) is
///   honoured to the nanosecond; a sign, an exponent, `.5`, `1.` or anything else is not a
///   number of seconds here. A value too large for a `Duration` (more than 20 digits)
///   saturates at [`Duration::MAX`] instead of failing: the server asked for a very long wait,
///   and the caller's own limit decides what to do with it.
/// - An HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms
///   RFC 9110 requires recipients to accept): the time until then, or zero for a date that has
///   passed (the server's clock may be ahead; retrying now is what it asks).
///
/// Whitespace around the value is ignored.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches(|c: char| c == ' ' || c == '\t');
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        return delta_seconds(value);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `DIGITS [ "." DIGITS ]` as a duration, saturating.
fn delta_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let Ok(seconds) = whole.parse::<u64>() else {
        // Only digits, so too many of them: the longest wait there is.
        return Some(Duration::MAX);
    };
    let nanos = fraction.map_or(0, |f| {
        // The first nine digits are nanoseconds; later ones are below a nanosecond.
        let f = &f[..f.len().min(9)];
        f.parse::<u32>().unwrap_or(0) * 10u32.pow(9 - f.len() as u32)
    });
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
    fn rfc_example() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delta_seconds_are_a_wait_from_now_whatever_the_clock() {
        let now = rfc_example();
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse("0", now), Some(Duration::ZERO));
        assert_eq!(parse(" 7\t", now), Some(Duration::from_secs(7)));
        assert_eq!(parse("007", now), Some(Duration::from_secs(7)));
        assert_eq!(parse("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse("0.25", SystemTime::UNIX_EPOCH), Some(Duration::from_millis(250)));
        assert_eq!(parse("2.0000000019", now), Some(Duration::new(2, 1)));
    }

    #[test]
    fn a_huge_number_of_seconds_saturates_instead_of_failing() {
        let max = u64::MAX.to_string();
        assert_eq!(parse(&max, rfc_example()), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(parse("99999999999999999999999999", rfc_example()), Some(Duration::MAX));
        assert_eq!(parse("99999999999999999999999999.5", rfc_example()), Some(Duration::MAX));
    }

    #[test]
    fn an_http_date_is_the_time_until_then() {
        let now = rfc_example() - Duration::from_secs(90);
        // IMF-fixdate, then the obsolete forms a recipient must accept.
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse(date, now), Some(Duration::from_secs(90)), "{date}");
        }
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        let later = rfc_example() + Duration::from_secs(3600);
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT", later), Some(Duration::ZERO));
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example()), Some(Duration::ZERO));
    }

    #[test]
    fn anything_else_is_no_wait_at_all() {
        let now = rfc_example();
        for garbage in [
            "",
            "   ",
            "-1",
            "-0",
            "+5",
            "1e3",
            "5 seconds",
            "1.",
            ".5",
            "1.2.3",
            "0x10",
            "NaN",
            "inf",
            "soon",
            "1 0",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "2026-12-07T18:00:00Z",
        ] {
            assert_eq!(parse(garbage, now), None, "{garbage:?}");
        }
    }
}
