//! Client-side quota throttling (KIP-219).
//!
//! From Apache Kafka 2.0 a broker whose quota a client exceeded answers at
//! once with `throttle_time_ms > 0` and then mutes the connection for that
//! long; the client is expected not to send further requests to it until
//! the time has passed (Java's `NetworkClient` marks the node throttled).
//! A client that goes on sending only has its requests wait in the muted
//! socket, and counts their wait against `request.timeout.ms`. The stream
//! keeps, per broker and per side, the instant until which no new Fetch
//! (source) or Produce (destination) request goes to it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// Per broker id: until when its requests wait.
#[derive(Debug, Default)]
pub(super) struct Throttles {
    until: BTreeMap<i32, Instant>,
}

impl Throttles {
    /// Notes that `broker` answered at `now` with `throttle_time_ms`.
    /// Returns the throttle when there is one (a later end never moves
    /// back).
    pub(super) fn note(
        &mut self,
        broker: i32,
        throttle_time_ms: i32,
        now: Instant,
    ) -> Option<Duration> {
        let ms = u64::try_from(throttle_time_ms).ok().filter(|ms| *ms > 0)?;
        let throttle = Duration::from_millis(ms);
        let end = now + throttle;
        let until = self.until.entry(broker).or_insert(end);
        *until = (*until).max(end);
        Some(throttle)
    }

    /// Whether a new request to `broker` must wait at `now`.
    pub(super) fn holds(&self, broker: i32, now: Instant) -> bool {
        self.until.get(&broker).is_some_and(|until| now < *until)
    }

    /// When the throttles end (for the stream's wakeup, which ignores
    /// instants already passed).
    pub(super) fn ends(&self) -> impl Iterator<Item = Instant> + '_ {
        self.until.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_broker_waits_and_others_do_not() {
        let now = Instant::now();
        let mut t = Throttles::default();
        assert_eq!(t.note(1, 0, now), None);
        assert_eq!(t.note(1, -5, now), None);
        assert!(!t.holds(1, now));
        assert_eq!(t.note(1, 300, now), Some(Duration::from_millis(300)));
        assert!(t.holds(1, now));
        assert!(t.holds(1, now + Duration::from_millis(299)));
        assert!(!t.holds(1, now + Duration::from_millis(300)));
        assert!(!t.holds(2, now));
        // A shorter throttle noted later does not shorten the first.
        assert_eq!(
            t.note(1, 100, now + Duration::from_millis(10)),
            Some(Duration::from_millis(100))
        );
        assert!(t.holds(1, now + Duration::from_millis(250)));
        let ends: Vec<Instant> = t.ends().collect();
        assert_eq!(ends, vec![now + Duration::from_millis(300)]);
    }
}
