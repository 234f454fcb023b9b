//! The wall clock the server's store and its Elements see: the system clock,
//! shifted by the configured offset (zero except in tests of expiry, which
//! restart a server "a day later" instead of sleeping).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::HostWallClock;

/// The system clock plus a fixed offset in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct OffsetClock {
    /// Milliseconds added to the system time.
    pub offset_ms: i64,
}

impl OffsetClock {
    /// A clock `seconds` ahead of (or, negative, behind) the system clock.
    pub fn seconds(seconds: i64) -> OffsetClock {
        OffsetClock {
            offset_ms: seconds.saturating_mul(1000),
        }
    }

    fn now_ms(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        system.saturating_add(self.offset_ms)
    }
}

impl elements_store::Clock for OffsetClock {
    fn now_millis(&self) -> i64 {
        self.now_ms()
    }
}

impl HostWallClock for OffsetClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }
}
