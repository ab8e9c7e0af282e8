//! How busy this process keeps the CPUs it may run on, so that background
//! work (indexing the audit backlog) runs only while requests leave room
//! for it.

use std::time::{Duration, Instant};

/// Each verdict covers at least this much wall time.
const WINDOW: Duration = Duration::from_millis(100);

pub(super) struct CpuGauge {
    /// Share of the available CPUs above which the process counts as busy.
    threshold: f64,
    cores: f64,
    started: Instant,
    cpu_at_start: Option<Duration>,
    /// Time spent in the background work itself during this window, which
    /// must not make the process look busy.
    own: Duration,
    busy: bool,
}

impl CpuGauge {
    pub(super) fn new(threshold: f64) -> CpuGauge {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        CpuGauge {
            threshold,
            cores,
            started: Instant::now(),
            cpu_at_start: process_cpu_time(),
            own: Duration::ZERO,
            busy: false,
        }
    }

    /// Runs `work` (background work, on this thread) and counts the CPU
    /// time it took as the work's own.
    pub(super) fn own_during<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let started = thread_cpu_time();
        let result = work();
        if let (Some(started), Some(now)) = (started, thread_cpu_time()) {
            self.own(now.saturating_sub(started));
        }
        result
    }

    /// Counts `spent` as the background work's own time.
    fn own(&mut self, spent: Duration) {
        self.own += spent;
    }

    /// Whether, over the last window, the process used more than the
    /// threshold of its CPUs for anything but the background work.
    pub(super) fn busy(&mut self) -> bool {
        let wall = self.started.elapsed();
        if wall >= WINDOW {
            let now = process_cpu_time();
            if let (Some(before), Some(now)) = (self.cpu_at_start, now) {
                let used = now.saturating_sub(before).saturating_sub(self.own);
                self.busy = used.as_secs_f64() > self.threshold * self.cores * wall.as_secs_f64();
            }
            self.started = Instant::now();
            self.cpu_at_start = now;
            self.own = Duration::ZERO;
        }
        self.busy
    }
}

/// CPU time of the whole process, all threads.
fn process_cpu_time() -> Option<Duration> {
    cpu_clock(CpuClock::Process)
}

/// CPU time of the calling thread: what background work on it costs, which
/// wall time overstates when request threads share its core.
fn thread_cpu_time() -> Option<Duration> {
    cpu_clock(CpuClock::Thread)
}

enum CpuClock {
    Process,
    Thread,
}

#[cfg(unix)]
fn cpu_clock(clock: CpuClock) -> Option<Duration> {
    let id = match clock {
        CpuClock::Process => libc::CLOCK_PROCESS_CPUTIME_ID,
        CpuClock::Thread => libc::CLOCK_THREAD_CPUTIME_ID,
    };
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Elsewhere the gauge never reports busy.
#[cfg(not(unix))]
fn cpu_clock(_: CpuClock) -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process spinning on every CPU it has is busy. (The opposite
    /// cannot be asserted here: other tests share this process. The
    /// threshold is low so that spinners sharing the machine with other
    /// processes still count.)
    #[test]
    fn spinning_on_every_core_is_busy() {
        let mut gauge = CpuGauge::new(0.25);
        let cores = gauge.cores as usize;
        let until = Instant::now() + WINDOW * 3;
        let spinners: Vec<_> = (0..cores)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while Instant::now() < until {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
            })
            .collect();
        std::thread::sleep(WINDOW * 2);
        let busy = gauge.busy();
        for s in spinners {
            s.join().unwrap();
        }
        assert!(busy);
    }

    /// Time counted as the background work's own does not make it busy.
    #[test]
    fn own_work_is_not_load() {
        let mut gauge = CpuGauge::new(0.5);
        gauge.own(Duration::from_secs(3600));
        std::thread::sleep(WINDOW);
        assert!(!gauge.busy());
    }
}
