//! Dates and times as the assistant says them to people: `today at 14:05 UTC`, `3 Dec 2026`.
//! Always UTC, and said so: the server does not know the person's time zone.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use hearth_store::Timestamp;

/// The day of `at` as seen on `now`'s day: `today`, `yesterday` or `3 Dec 2026`.
pub fn day(at: Timestamp, now: Timestamp) -> String {
    let (at, now) = (utc(at).date_naive(), utc(now).date_naive());
    if at == now {
        "today".to_owned()
    } else if now.pred_opt() == Some(at) {
        "yesterday".to_owned()
    } else {
        at.format("%-d %b %Y").to_string()
    }
}

/// The day and minute of `at`: `today at 14:05 UTC`, `3 Dec 2026 at 09:30 UTC`.
pub fn moment(at: Timestamp, now: Timestamp) -> String {
    format!("{} at {} UTC", day(at, now), utc(at).format("%H:%M"))
}

/// A wall-clock time as a [`Timestamp`] (times before 1970 are not expected; they read as 1970).
pub fn timestamp(at: SystemTime) -> Timestamp {
    let millis = at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

fn utc(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.as_millis()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_moments_are_said_for_people_in_utc() {
        // 2026-12-03T14:05:09Z
        let now = Timestamp::from_millis(1_796_306_709_000);
        assert_eq!(moment(now, now), "today at 14:05 UTC");
        let early = Timestamp::from_millis(1_796_256_000_000); // 2026-12-03T00:00:00Z
        assert_eq!(moment(early, now), "today at 00:00 UTC");
        assert_eq!(moment(early.plus_secs(-60), now), "yesterday at 23:59 UTC");
        assert_eq!(day(early.plus_secs(-2 * 86_400), now), "1 Dec 2026");
        assert_eq!(moment(Timestamp::from_millis(1_767_258_000_000), now), "1 Jan 2026 at 09:00 UTC");
        assert_eq!(timestamp(UNIX_EPOCH + std::time::Duration::from_millis(1_796_306_709_000)), now);
    }
}
