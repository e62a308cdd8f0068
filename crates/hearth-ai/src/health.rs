//! Per-key failure tracking: a few consecutive failures put a key in a cool-down, during
//! which the router skips it; one success clears its record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::KeyFingerprint;

/// Most keys remembered. Per-request keys come and go; past this, only keys that are
/// cooling down are kept, so a flood of one-off failing keys cannot grow memory.
const MAX_TRACKED_KEYS: usize = 100_000;

/// The health of every key the router has used, by fingerprint.
#[derive(Debug)]
pub struct KeyHealth {
    failures_before_cooldown: u32,
    cooldown: Duration,
    keys: Mutex<HashMap<KeyFingerprint, Record>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
    refused_at: Option<SystemTime>,
}

/// What is known of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyState {
    /// Failures since its last success.
    pub consecutive_failures: u32,
    /// When its cool-down ends, if it is cooling down now.
    pub cooling_until: Option<Instant>,
    /// When its provider first refused it as invalid, if it has not answered since.
    pub refused_at: Option<SystemTime>,
}

impl KeyHealth {
    /// Cools a key down for `cooldown` after `failures_before_cooldown` consecutive failures.
    pub fn new(failures_before_cooldown: u32, cooldown: Duration) -> Self {
        Self { failures_before_cooldown: failures_before_cooldown.max(1), cooldown, keys: Mutex::default() }
    }

    /// The key's state at `now`.
    pub fn state(&self, key: KeyFingerprint, now: Instant) -> KeyState {
        let keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.get(&key).map_or_else(KeyState::default, |record| KeyState {
            consecutive_failures: record.consecutive_failures,
            cooling_until: record.cooling_until.filter(|until| *until > now),
            refused_at: record.refused_at,
        })
    }

    /// Whether the router should skip the key at `now`.
    pub fn is_cooling_down(&self, key: KeyFingerprint, now: Instant) -> bool {
        self.state(key, now).cooling_until.is_some()
    }

    /// A call with the key succeeded: its record is cleared.
    pub fn record_success(&self, key: KeyFingerprint) {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&key);
    }

    /// The key's provider refused it as invalid at `at` (wall-clock time, for people): it
    /// shows as refused until it answers again. The first refusal's time is kept.
    pub fn record_refusal(&self, key: KeyFingerprint, at: SystemTime) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.entry(key).or_default().refused_at.get_or_insert(at);
    }

    /// The provider asked for the key to wait until `until` (`Retry-After`): it rests at least
    /// that long, whatever its failure count.
    pub fn rest_until(&self, key: KeyFingerprint, until: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let record = keys.entry(key).or_default();
        record.cooling_until = Some(record.cooling_until.map_or(until, |current| current.max(until)));
    }

    /// A call with the key failed at `now`. Returns whether this failure started a cool-down.
    /// The count starts again after a cool-down, so a key that keeps failing afterwards is
    /// cooled down again after the same number of failures.
    pub fn record_failure(&self, key: KeyFingerprint, now: Instant) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.len() >= MAX_TRACKED_KEYS && !keys.contains_key(&key) {
            keys.retain(|_, record| {
                record.cooling_until.is_some_and(|until| until > now) || record.refused_at.is_some()
            });
        }
        let record = keys.entry(key).or_default();
        if record.cooling_until.is_some_and(|until| until <= now) {
            // A refusal is forgotten only when the key answers.
            *record = Record { refused_at: record.refused_at, ..Record::default() };
        }
        record.consecutive_failures += 1;
        let starts_cooldown =
            record.consecutive_failures >= self.failures_before_cooldown && record.cooling_until.is_none();
        if starts_cooldown {
            record.cooling_until = Some(now + self.cooldown);
        }
        starts_cooldown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_cool_a_key_down_and_a_success_resets_it() {
        let health = KeyHealth::new(3, Duration::from_secs(60));
        let key = KeyFingerprint::of("a key for the health test");
        let start = Instant::now();
        assert!(!health.record_failure(key, start));
        assert!(!health.record_failure(key, start));
        assert!(!health.is_cooling_down(key, start));
        assert!(health.record_failure(key, start));
        assert!(health.is_cooling_down(key, start + Duration::from_secs(59)));
        assert!(!health.is_cooling_down(key, start + Duration::from_secs(61)));

        // After the cool-down the count starts again.
        let later = start + Duration::from_secs(61);
        assert!(!health.record_failure(key, later));
        assert_eq!(health.state(key, later).consecutive_failures, 1);

        // Two failures, a success, two failures: never three in a row.
        let other = KeyFingerprint::of("another key for the test");
        health.record_failure(other, start);
        health.record_failure(other, start);
        health.record_success(other);
        health.record_failure(other, start);
        assert!(!health.record_failure(other, start));
        assert!(!health.is_cooling_down(other, start));

        // A provider's Retry-After rests a key at once, for as long as it says.
        let asked = KeyFingerprint::of("a key the provider asked to wait");
        health.rest_until(asked, start + Duration::from_secs(5));
        assert!(health.is_cooling_down(asked, start + Duration::from_secs(4)));
        assert!(!health.is_cooling_down(asked, start + Duration::from_secs(6)));

        // A refused key stays refused through failures and cool-downs, until it answers.
        let refused = KeyFingerprint::of("a key the provider refused");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        health.record_refusal(refused, at);
        health.record_refusal(refused, at + Duration::from_secs(5));
        for _ in 0..3 {
            health.record_failure(refused, start);
        }
        assert_eq!(health.state(refused, start).refused_at, Some(at), "the first refusal's time");
        assert!(!health.record_failure(refused, start + Duration::from_secs(61)), "counted afresh");
        assert_eq!(health.state(refused, start + Duration::from_secs(61)).refused_at, Some(at));
        health.record_success(refused);
        assert_eq!(health.state(refused, start).refused_at, None);
    }
}
