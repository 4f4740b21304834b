//! The wall clock: unix seconds now, and RFC 3339 for display. The core takes time as an
//! argument; the server reads it from the [`Clock`] its [`crate::app::App`] was built with
//! (`AppParts::clock`), so an in-process test can run the whole request path at a fixed time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Where the server reads the time: the system's wall clock, or a fixed instant (tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Always these unix seconds.
    Fixed(i64),
}

impl Clock {
    /// Seconds since the Unix epoch, by this clock.
    pub fn unix_now(&self) -> i64 {
        match self {
            Clock::System => unix_now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// Seconds since the Unix epoch, by the system's wall clock. Server code reads the time through
/// its app's [`Clock`]; this is the clock behind [`Clock::System`] (and what tests sign tokens
/// with).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 3339 (seconds) for unix seconds.
pub fn rfc3339(unix: i64) -> String {
    let secs = u64::try_from(unix).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stays_and_the_system_clock_moves_on() {
        assert_eq!(Clock::Fixed(1_000).unix_now(), 1_000);
        assert!(Clock::System.unix_now() > 1_700_000_000);
    }
}
