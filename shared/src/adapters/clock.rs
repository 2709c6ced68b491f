//! The real clock (the `Clock` port on the system time). Tests and the local runner use
//! `testkit::memory::ManualClock` instead.

use crate::domain::Time;
use crate::ports::Clock;

/// The real clock for Lambda.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        chrono::Utc::now()
    }
}
