//! The caller's pace: how fast it consumes bytes that are ready, measured
//! over its own time (time not spent waiting for bytes), so a reader
//! slower than the link is told apart from one the link holds back.

use std::time::{Duration, Instant};

/// A sample covers at least this many bytes: fewer say little.
const MIN_SAMPLE_BYTES: u64 = 4 << 20;

/// Busy time below this is taken as this: a caller that copies at memory
/// speed reads as very fast, never as infinitely so.
const MIN_BUSY: Duration = Duration::from_micros(100);

/// Weight of a new sample: recent blocks matter most.
const SAMPLE_WEIGHT: f64 = 0.25;

/// The running estimate of the caller's pace.
#[derive(Debug)]
pub(crate) struct Pace {
    since: Instant,
    delivered_since: u64,
    waited_since: Duration,
    bytes_per_sec: Option<f64>,
}

impl Pace {
    pub(crate) fn new(now: Instant) -> Pace {
        Pace {
            since: now,
            delivered_since: 0,
            waited_since: Duration::ZERO,
            bytes_per_sec: None,
        }
    }

    /// Takes a sample at `now`, the caller having been handed `delivered`
    /// bytes and waited `waited` in all (a sample of too few bytes waits
    /// for more).
    pub(crate) fn sample(&mut self, now: Instant, delivered: u64, waited: Duration) {
        let bytes = delivered.saturating_sub(self.delivered_since);
        if bytes >= MIN_SAMPLE_BYTES {
            let elapsed = now.saturating_duration_since(self.since);
            let busy = elapsed
                .saturating_sub(waited.saturating_sub(self.waited_since))
                .max(MIN_BUSY);
            let sample = bytes as f64 / busy.as_secs_f64();
            self.bytes_per_sec = Some(match self.bytes_per_sec {
                None => sample,
                Some(old) => old + SAMPLE_WEIGHT * (sample - old),
            });
            self.since = now;
            self.delivered_since = delivered;
            self.waited_since = waited;
        }
    }

    /// The pace in bytes per second, 0 until enough was seen.
    pub(crate) fn rate(&self) -> u64 {
        self.bytes_per_sec
            .map_or(0, |rate| rate.min(u64::MAX as f64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_counts_the_callers_own_time_not_its_waits() {
        let start = Instant::now();
        let mut pace = Pace::new(start);
        pace.sample(start + Duration::from_millis(5), 1000, Duration::ZERO);
        assert_eq!(pace.rate(), 0);
        // 10 MiB in 1 s, of which 0.5 s waiting for bytes: 20 MiB/s.
        let waited = Duration::from_millis(500);
        pace.sample(start + Duration::from_secs(1), 10 << 20, waited);
        assert_eq!(pace.rate(), 20 << 20);
        // Then 10 MiB more in 1 s with no wait: blended towards 10 MiB/s.
        pace.sample(start + Duration::from_secs(2), 20 << 20, waited);
        let rate = pace.rate();
        assert_eq!(rate, (17.5 * (1 << 20) as f64) as u64);
    }
}
