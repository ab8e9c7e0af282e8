//! Global bounds on all requests: how many may be in flight at once, and
//! optionally how many may start per second. Saturation sheds load at once
//! (503 or 429 with `Retry-After`) instead of queueing without bound.
//!
//! Both checks are lock-free: a semaphore permit and, when a rate is set,
//! one compare-and-swap (GCRA, the "generic cell rate algorithm").

use crate::error::ErrorReply;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stead_proto::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `rate` requests per second, with bursts of up to `rate`.
#[derive(Debug)]
pub struct RateLimit {
    interval_ns: u64,
    tolerance_ns: u64,
    /// Theoretical arrival time of the next request, ns since `start`.
    tat: AtomicU64,
    start: Instant,
}

impl RateLimit {
    pub fn per_second(rate: u32) -> Self {
        let interval_ns = 1_000_000_000 / u64::from(rate.max(1));
        RateLimit {
            interval_ns,
            tolerance_ns: 1_000_000_000u64.saturating_sub(interval_ns),
            tat: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// `Err(wait)` when the request exceeds the rate.
    pub fn check(&self) -> Result<(), Duration> {
        let now = self.start.elapsed().as_nanos() as u64;
        let mut current = self.tat.load(Ordering::Relaxed);
        loop {
            let tat = current.max(now);
            if tat > now + self.tolerance_ns {
                return Err(Duration::from_nanos(tat - self.tolerance_ns - now));
            }
            match self.tat.compare_exchange_weak(current, tat + self.interval_ns, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

/// The global admission of requests.
#[derive(Debug)]
pub struct Gate {
    in_flight: Option<Arc<Semaphore>>,
    max_in_flight: usize,
    rate: Option<RateLimit>,
    last_warning: AtomicU64,
    start: Instant,
}

impl Gate {
    pub fn new(max_concurrent: Option<usize>, per_second: Option<u32>) -> Self {
        let max_concurrent = max_concurrent.filter(|&n| n > 0).map(|n| n.min(Semaphore::MAX_PERMITS));
        Gate {
            in_flight: max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
            max_in_flight: max_concurrent.unwrap_or(0),
            rate: per_second.filter(|&n| n > 0).map(RateLimit::per_second),
            last_warning: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// A permit to hold while the request runs, or the answer that refuses it.
    pub fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, ErrorReply> {
        if let Some(rate) = &self.rate {
            if let Err(wait) = rate.check() {
                self.warn("request rate above --max-requests-per-second; answering 429");
                let secs = wait.as_millis().div_ceil(1000) as u64;
                return Err(ErrorReply::too_many_requests("the server's request rate limit is reached", secs));
            }
        }
        match &self.in_flight {
            None => Ok(None),
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Ok(Some(permit)),
                Err(_) => {
                    self.warn("all --max-concurrent-requests slots are busy; shedding load with 503");
                    Err(ErrorReply::code(ErrorCode::TemporarilyUnavailable, "the server is busy; retry later"))
                }
            },
        }
    }

    /// Logs at most once every 10 seconds.
    fn warn(&self, message: &'static str) {
        // Seconds since start, plus 10 so that the first warning is due.
        let now = self.start.elapsed().as_secs() + 10;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self.last_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(target: "stead::abuse", max_in_flight = self.max_in_flight, "{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_allows_a_burst_then_refuses() {
        let rate = RateLimit::per_second(50);
        let allowed = (0..200).filter(|_| rate.check().is_ok()).count();
        assert!((50..=55).contains(&allowed), "{allowed}");
        let wait = rate.check().unwrap_err();
        assert!(wait <= Duration::from_millis(25), "{wait:?}");
    }

    #[test]
    fn saturation_sheds_with_503() {
        let gate = Gate::new(Some(2), None);
        let a = gate.admit().unwrap();
        let _b = gate.admit().unwrap();
        let refused = gate.admit().unwrap_err();
        assert_eq!(refused.error.code, ErrorCode::TemporarilyUnavailable);
        drop(a);
        assert!(gate.admit().is_ok());
        let unlimited = Gate::new(None, None);
        assert!((0..10_000).all(|_| unlimited.admit().unwrap().is_none()));
    }
}
