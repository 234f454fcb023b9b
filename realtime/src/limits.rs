//! The bounds on what one socket and one user can make the server hold or
//! do. The operator sets them under `[realtime]` (`elements-config`).

use std::time::{Duration, Instant};

/// Limits of the realtime socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest text frame a client may send, in bytes; a larger one closes
    /// the socket (close code 1009).
    pub max_message_bytes: usize,
    /// Envelopes that may wait in one session's outbox; a session whose
    /// outbox is full is disconnected (a reader slower than what it is sent).
    pub send_queue: usize,
    /// Sockets one user may hold at once; one more is refused.
    pub max_sockets_per_user: usize,
    /// Sockets this node holds at once, all users together; one more is
    /// refused. An upgraded socket leaves the listener's connection cap, so
    /// this is what bounds their file descriptors and memory.
    pub max_sockets: usize,
    /// Envelopes a socket may send per second (sustained).
    pub messages_per_sec: u32,
    /// Envelopes a socket may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Longest room name, in bytes.
    pub max_channel_name_bytes: usize,
    /// Largest decoded `match_data_send` payload, in bytes.
    pub max_match_data_bytes: usize,
    /// Channels and matches one session may be in at once.
    pub max_joins: usize,
    /// Users one session may follow.
    pub max_follows: usize,
    /// How often the session token is checked again (logout, ban, expiry):
    /// the socket closes at most this long after the token stops being
    /// valid.
    pub session_check: Duration,
    /// Longest the server waits for a client to take one frame before it
    /// drops the connection.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 16 << 10,
            send_queue: 256,
            max_sockets_per_user: 8,
            max_sockets: 10_000,
            messages_per_sec: 50,
            message_burst: 100,
            max_channel_name_bytes: 64,
            max_match_data_bytes: 8 << 10,
            max_joins: 64,
            max_follows: 500,
            session_check: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A token bucket: `burst` envelopes at once, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(per_sec: u32, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            per_sec: f64::from(per_sec.max(1)),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when none is left.
    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut r = RateLimiter::new(10, 3);
        r.last = start;
        assert!((0..3).all(|_| r.allow_at(start)));
        assert!(!r.allow_at(start));
        assert!(r.allow_at(start + Duration::from_millis(100)));
        assert!(!r.allow_at(start + Duration::from_millis(100)));
    }
}
