//! The sliding-window limit on assistant requests: at most N per person in any window of W
//! seconds, counted exactly (a log of the request times, not a token-bucket approximation).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// People tracked before idle entries are swept.
const SWEEP_AT: usize = 10_000;

/// Request times per person, within the window.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u32,
    window: Duration,
    requests: Mutex<HashMap<Uuid, VecDeque<Instant>>>,
}

/// Where a person stands after a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Requests left in the window.
    pub remaining: u32,
    /// Until the oldest request in the window leaves it, freeing one more.
    pub reset_in: Duration,
}

impl SlidingWindow {
    /// At most `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, requests: Mutex::default() }
    }

    /// Where `user` stands at `now`, without counting a request.
    pub fn peek(&self, user: Uuid, now: Instant) -> WindowState {
        let requests = self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let recent: Vec<Instant> = requests
            .get(&user)
            .map(|times| times.iter().copied().filter(|at| now.duration_since(*at) < self.window).collect())
            .unwrap_or_default();
        let remaining = self.limit.saturating_sub(u32::try_from(recent.len()).unwrap_or(u32::MAX));
        let reset_in =
            recent.first().map_or(Duration::ZERO, |oldest| (*oldest + self.window).saturating_duration_since(now));
        WindowState { remaining, reset_in }
    }

    /// The most requests the window lets through.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Lets a request of `user` at `now` through, or says how long until one would be.
    pub fn admit(&self, user: Uuid, now: Instant) -> Result<WindowState, Duration> {
        let mut requests = self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if requests.len() >= SWEEP_AT && !requests.contains_key(&user) {
            requests.retain(|_, times| times.back().is_some_and(|last| now.duration_since(*last) < self.window));
        }
        let times = requests.entry(user).or_default();
        while times.front().is_some_and(|oldest| now.duration_since(*oldest) >= self.window) {
            times.pop_front();
        }
        let until_oldest_leaves = |times: &VecDeque<Instant>| {
            times.front().map_or(self.window, |oldest| (*oldest + self.window).saturating_duration_since(now))
        };
        if times.len() >= self.limit as usize {
            return Err(until_oldest_leaves(times));
        }
        times.push_back(now);
        let remaining = self.limit - u32::try_from(times.len()).unwrap_or(u32::MAX);
        Ok(WindowState { remaining, reset_in: until_oldest_leaves(times) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let window = SlidingWindow::new(3, Duration::from_secs(60));
        let ada = Uuid::now_v7();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(window.admit(ada, at(0)), Ok(WindowState { remaining: 2, reset_in: Duration::from_secs(60) }));
        assert_eq!(window.admit(ada, at(10)), Ok(WindowState { remaining: 1, reset_in: Duration::from_secs(50) }));
        assert_eq!(window.admit(ada, at(20)), Ok(WindowState { remaining: 0, reset_in: Duration::from_secs(40) }));
        // Full until the first request is 60 s old.
        assert_eq!(window.admit(ada, at(59)), Err(Duration::from_secs(1)));
        assert_eq!(window.admit(ada, at(60)), Ok(WindowState { remaining: 0, reset_in: Duration::from_secs(10) }));
        assert_eq!(window.admit(ada, at(65)), Err(Duration::from_secs(5)));
        assert_eq!(window.peek(ada, at(65)), WindowState { remaining: 0, reset_in: Duration::from_secs(5) });
        assert_eq!(window.peek(ada, at(200)), WindowState { remaining: 3, reset_in: Duration::ZERO });
        // Refused requests do not count; others have their own window.
        assert!(window.admit(ada, at(70)).is_ok());
        assert!(window.admit(Uuid::now_v7(), at(65)).is_ok());
    }
}
