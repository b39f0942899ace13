//! Timestamps. The stores take "now" as a parameter (milliseconds since the epoch) so tests run
//! on a fixed clock; they persist ISO-8601 UTC strings of fixed width, which sort lexically.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Millis = i64;

pub fn iso(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_iso(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_and_sorts() {
        let a = iso(1_700_000_000_123);
        assert_eq!(a, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_iso(&a), Some(1_700_000_000_123));
        assert!(iso(999) < iso(1_000) && iso(1_000) < iso(10_000_000_000_000));
    }
}
