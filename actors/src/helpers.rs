//! Small functions several modules share, kept out of any one actor's file: how durations
//! are written for people and the wall clock in milliseconds. (Text made safe to print is
//! `sanitize::visible`.) No actor state here; everything is a plain function.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// "5s", "500ms": durations as people write them.
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    ms_since_epoch(SystemTime::now())
}

/// `at` in milliseconds since the Unix epoch (0 if it is before it): for a caller that needs
/// the clock as a `SystemTime` too, read once.
pub fn ms_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_writes_whole_seconds_as_seconds_and_the_rest_as_milliseconds() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn now_ms_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
