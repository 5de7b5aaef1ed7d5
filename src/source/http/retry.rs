//! When and how long to wait before trying a failed request again:
//! exponential backoff with full jitter, `Retry-After`, and caps on the
//! number of attempts and the time spent retrying.
//!
//! Full jitter (a delay drawn uniformly from zero to the exponential cap)
//! spreads the retries of many readers hitting the same overloaded server,
//! instead of having them come back in lockstep.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::source::FetchContext;

/// Attempts of one request, the first included. Five attempts ride out a
/// server restart or a brief overload without turning a dead server into a
/// long hang.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The cap on the first backoff; doubled for each retry after it.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The cap on any one backoff (a `Retry-After` from the server may ask for
/// longer, within [`DEFAULT_MAX_RETRY_TIME`]).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the retries of one request may go on, from its first failure.
pub const DEFAULT_MAX_RETRY_TIME: Duration = Duration::from_secs(60);

/// How often a sleeping retry looks at its cancel flag, so that a hard seek
/// or a close does not wait for a backoff to run out.
const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Longest `Retry-After` taken from a server, so a bogus value cannot
/// overflow the arithmetic; anything longer exceeds every sane budget.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How an [`HttpSource`](crate::HttpSource) retries a request that failed
/// in a way that may not last: a connect error, a timeout, status 408, 429
/// or 5xx, or a body cut short (which resumes at its first missing byte).
/// Other failures (404, 403, a changed object…) are never retried.
///
/// Before retry `n` (1, 2, …) the source waits a random time between zero
/// and `min(max_backoff, initial_backoff × 2ⁿ⁻¹)`, or longer when the server
/// asked for it with `Retry-After`. It gives up after `max_attempts`
/// attempts, or when the next wait would end more than `max_total` after
/// the first failure, and returns the last error.
///
/// ```
/// use prefetch_reader::RetryPolicy;
/// use std::time::Duration;
///
/// let mut policy = RetryPolicy::default();
/// policy.max_attempts = 3;
/// policy.initial_backoff = Duration::from_millis(50);
/// assert_eq!(RetryPolicy::never().max_attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry. Defaults to
    /// [`DEFAULT_MAX_ATTEMPTS`] (5).
    pub max_attempts: u32,
    /// The cap on the first backoff. Defaults to
    /// [`DEFAULT_INITIAL_BACKOFF`] (100 ms).
    pub initial_backoff: Duration,
    /// The cap on any one backoff. Defaults to [`DEFAULT_MAX_BACKOFF`]
    /// (10 s).
    pub max_backoff: Duration,
    /// How long retries may go on from the first failure. Defaults to
    /// [`DEFAULT_MAX_RETRY_TIME`] (60 s).
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_total: DEFAULT_MAX_RETRY_TIME,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries: every failure is returned at once.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The cap on the backoff before retry `retry` (1 for the first):
    /// `min(max_backoff, initial_backoff × 2^(retry − 1))`.
    pub(crate) fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }
}

/// The retry state of one request (a `read_at` call, or opening).
#[derive(Debug)]
pub(crate) struct Retrier<'a> {
    policy: &'a RetryPolicy,
    failures: u32,
    first_failure: Option<Instant>,
    rng: fastrand::Rng,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy) -> Retrier<'a> {
        Retrier::with_rng(policy, fastrand::Rng::new())
    }

    fn with_rng(policy: &'a RetryPolicy, rng: fastrand::Rng) -> Retrier<'a> {
        Retrier {
            policy,
            failures: 0,
            first_failure: None,
            rng,
        }
    }

    /// After a failed attempt: how long to wait before the next one, or
    /// `None` to give up (attempts or time used up, or a `Retry-After`
    /// beyond the time left).
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        let first_failure = *self.first_failure.get_or_insert_with(Instant::now);
        if self.failures >= self.policy.max_attempts {
            return None;
        }
        let cap = self.policy.backoff_cap(self.failures);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let mut delay = Duration::from_nanos(self.rng.u64(0..=nanos));
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(MAX_RETRY_AFTER));
        }
        if first_failure.elapsed().saturating_add(delay) > self.policy.max_total {
            return None;
        }
        Some(delay)
    }
}

/// Sleeps for `delay` in short slices, returning [`Error::Cancelled`] as
/// soon as `ctx` is cancelled.
pub(crate) fn sleep_unless_cancelled(delay: Duration, ctx: &FetchContext) -> Result<()> {
    let until = Instant::now() + delay;
    loop {
        ctx.check_cancelled()?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(CANCEL_POLL_INTERVAL));
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date
/// (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) taken relative to `now`.
/// `None` for anything else.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// servers must send.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|t| t.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_total: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_caps_double_up_to_the_maximum() {
        let p = policy(10);
        let caps: Vec<u64> = (1..=6)
            .map(|n| p.backoff_cap(n).as_millis() as u64)
            .collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_cap(200), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_within_the_cap() {
        let p = policy(100);
        let mut retrier = Retrier::with_rng(&p, fastrand::Rng::with_seed(7));
        let mut delays = Vec::new();
        for n in 1..=20 {
            let delay = retrier.next_delay(None).expect("within attempts");
            assert!(delay <= p.backoff_cap(n), "retry {n}: {delay:?}");
            delays.push(delay);
        }
        // Full jitter: not all at the cap, not all the same.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(900)));
        assert!(delays.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn attempts_are_capped() {
        let p = policy(3);
        let mut retrier = Retrier::new(&p);
        assert!(retrier.next_delay(None).is_some());
        assert!(retrier.next_delay(None).is_some());
        assert_eq!(retrier.next_delay(None), None);
        let never = RetryPolicy::never();
        assert_eq!(Retrier::new(&never).next_delay(None), None);
    }

    #[test]
    fn retry_after_is_a_floor_under_the_delay() {
        let p = policy(5);
        let mut retrier = Retrier::new(&p);
        let delay = retrier.next_delay(Some(Duration::from_secs(2)));
        assert_eq!(delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_retry_after_past_the_time_budget_gives_up() {
        let mut p = policy(5);
        p.max_total = Duration::from_secs(5);
        let mut retrier = Retrier::new(&p);
        assert_eq!(retrier.next_delay(Some(Duration::from_secs(6))), None);
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn a_cancelled_sleep_returns_at_once() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let ctx = FetchContext::attached(Arc::new(AtomicBool::new(true)), Arc::default());
        let started = Instant::now();
        let result = sleep_unless_cancelled(Duration::from_secs(600), &ctx);
        assert!(matches!(result, Err(Error::Cancelled)));
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
