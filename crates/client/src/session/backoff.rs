//! Delays between reconnection attempts: exponential with random jitter, so
//! that clients cut off together do not all return in the same instant.

use std::time::Duration;

use rand::Rng;

/// Delay before the second attempt, before jitter.
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Maximum delay, before jitter.
const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Returns the delay before the next attempt: a random value between half
    /// and all of `FIRST_DELAY * 2^failures`, capped at `MAX_DELAY`.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let ceiling = FIRST_DELAY.saturating_mul(1 << exponent).min(MAX_DELAY);
        let fraction = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(fraction)
    }

    /// Starts over after a connection that worked.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(
            first >= FIRST_DELAY / 2 && first <= FIRST_DELAY,
            "{first:?}"
        );
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay <= MAX_DELAY, "{delay:?}");
        }
        let late = backoff.next_delay();
        assert!(late >= MAX_DELAY / 2, "{late:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST_DELAY);
    }
}
