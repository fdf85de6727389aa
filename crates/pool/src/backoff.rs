//! Exponential backoff with jitter, as Kafka's clients do for reconnects
//! (`reconnect.backoff.ms` doubling up to `reconnect.backoff.max.ms`, each
//! delay spread by ±20% so that many clients do not retry in lockstep).

use std::time::Duration;

/// The delays between attempts: `initial * 2^n`, capped at `max`, with ±20%
/// jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    /// Backoff from `initial` up to `max`, jitter seeded from `seed` (any
    /// value; see [`crate::dialer::Dialer::jitter_seed`]).
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
            // xorshift needs a non-zero state.
            seed: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.attempts.min(20);
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .as_secs_f64();
        // xorshift64: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let jittered = base * (0.8 + 0.4 * unit);
        Duration::from_secs_f64(jittered.min(self.max.as_secs_f64() * 1.2))
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Number of delays handed out since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(1000), 7);
        let delays: Vec<f64> = (0..8)
            .map(|_| b.next_delay().as_secs_f64() * 1000.0)
            .collect();
        let bases = [50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0, 1000.0];
        for (d, base) in delays.iter().zip(bases) {
            assert!(
                *d >= base * 0.8 - 1e-6 && *d <= base * 1.2 + 1e-6,
                "{d} vs {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(60));
    }
}
