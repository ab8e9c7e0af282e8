//! Sliding-window event counters keyed by a 64-bit key, in a bounded,
//! sharded map.
//!
//! Each key keeps two fixed windows (the current one and the one before);
//! the count "in the last window" is estimated as
//! `previous × (part of the previous window still inside) + current`, the
//! usual sliding-window approximation. It avoids the burst a plain fixed
//! window allows at its boundary and needs 16 bytes per key.
//!
//! Memory is bounded: at most `capacity` keys are held. A full shard first
//! drops keys whose windows have expired, then evicts the key with the
//! smallest count among a few it samples, so that flooding the map with new
//! keys (rotated addresses or client ids) pushes out those fresh one-event
//! keys rather than the heavy counters an attacker would like reset.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 16;
/// How many entries a full shard looks at to choose the one it evicts.
const EVICTION_SAMPLE: usize = 8;

/// Time in milliseconds on a monotonic clock of the caller's choosing.
pub type Millis = u64;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Index of the current window (`now / window`).
    window: u64,
    current: u32,
    previous: u32,
}

impl Slot {
    /// The counts of the window holding `now` and of the one before it.
    fn counts_at(&self, window: u64) -> (u32, u32) {
        if window == self.window {
            (self.current, self.previous)
        } else if window == self.window + 1 {
            (0, self.current)
        } else {
            (0, 0)
        }
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Slot>,
    /// The window in which expired keys were last swept out of a full shard.
    swept: u64,
}

pub struct WindowCounter {
    shards: Box<[Mutex<Shard>]>,
    window_ms: u64,
    shard_capacity: usize,
}

impl WindowCounter {
    pub fn new(window_ms: u64, capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        WindowCounter { shards, window_ms: window_ms.max(1), shard_capacity: capacity.div_ceil(SHARDS).max(1) }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The keys are already keyed hashes: their high bits pick the shard
        // (hashbrown uses the low ones).
        let i = (key >> 56) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The estimated number of events in the window ending at `now`.
    pub fn estimate(&self, key: u64, now: Millis) -> f64 {
        let slot = self.shard(key).map.get(&key).copied();
        slot.map(|s| self.estimate_slot(&s, now)).unwrap_or(0.0)
    }

    /// Counts one event and returns the new estimate.
    pub fn add(&self, key: u64, now: Millis) -> f64 {
        let window = now / self.window_ms;
        let mut shard = self.shard(key);
        if shard.map.len() >= self.shard_capacity && !shard.map.contains_key(&key) {
            self.make_room(&mut shard, window);
        }
        let slot = match shard.map.entry(key) {
            MapEntry::Occupied(e) => e.into_mut(),
            MapEntry::Vacant(e) => e.insert(Slot { window, current: 0, previous: 0 }),
        };
        let (current, previous) = slot.counts_at(window);
        *slot = Slot { window, current: current.saturating_add(1), previous };
        self.estimate_slot(slot, now)
    }

    /// How long until the estimate for `key` falls below `limit`, given
    /// that no further events are counted; zero when it already is.
    pub fn time_until_below(&self, key: u64, now: Millis, limit: u32) -> Millis {
        let Some(slot) = self.shard(key).map.get(&key).copied() else { return 0 };
        if self.estimate_slot(&slot, now) < limit as f64 {
            return 0;
        }
        let w = self.window_ms as f64;
        let window = now / self.window_ms;
        let (current, previous) = slot.counts_at(window);
        let (current, previous, limit) = (current as f64, previous as f64, limit as f64);
        let elapsed = (now % self.window_ms) as f64;
        let until_next = w - elapsed;
        // Within this window the estimate is previous × (1 - t/w) + current.
        // Add a millisecond: at the computed instant the estimate equals the limit.
        let wait = if current < limit {
            // previous > 0 here, or the estimate would be below the limit.
            let t = w * (1.0 - (limit - current) / previous);
            (t - elapsed).max(0.0) + 1.0
        } else {
            // In the next window it is current × (1 - t/w).
            until_next + w * (1.0 - limit / current).max(0.0) + 1.0
        };
        wait.ceil() as Millis
    }

    fn estimate_slot(&self, slot: &Slot, now: Millis) -> f64 {
        let window = now / self.window_ms;
        let (current, previous) = slot.counts_at(window);
        let remaining = 1.0 - (now % self.window_ms) as f64 / self.window_ms as f64;
        previous as f64 * remaining + current as f64
    }

    fn make_room(&self, shard: &mut Shard, window: u64) {
        // A full sweep at most once a window: under a flood each insert
        // costs a sample, not a scan.
        if shard.swept < window {
            shard.swept = window;
            shard.map.retain(|_, s| s.window + 1 >= window);
            if shard.map.len() < self.shard_capacity {
                return;
            }
        }
        let victim = shard
            .map
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, s)| {
                let (current, previous) = s.counts_at(window);
                current.saturating_add(previous)
            })
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            shard.map.remove(&k);
        }
    }

    /// Drops every key whose windows have expired.
    pub fn prune(&self, now: Millis) {
        let window = now / self.window_ms;
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).map.retain(|_, s| s.window + 1 >= window);
        }
    }

    /// How many keys are held.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let c = WindowCounter::new(60_000, 1000);
        for _ in 0..10 {
            c.add(7, 1_000);
        }
        assert_eq!(c.estimate(7, 1_000), 10.0);
        assert_eq!(c.estimate(8, 1_000), 0.0);
        // Halfway through the next window half of them still count.
        assert_eq!(c.estimate(7, 90_000), 5.0);
        assert_eq!(c.estimate(7, 120_000), 0.0);
        assert_eq!(c.estimate(7, 500_000), 0.0);
    }

    #[test]
    fn time_until_below_is_when_the_estimate_drops() {
        let c = WindowCounter::new(60_000, 1000);
        for _ in 0..10 {
            c.add(1, 10_000);
        }
        let now = 10_000;
        let wait = c.time_until_below(1, now, 10);
        // The next window starts 50 s later; there the estimate is just
        // under 10 at once.
        assert!((50_000..=50_002).contains(&wait), "{wait}");
        assert!(c.estimate(1, now + wait) < 10.0);
        let wait = c.time_until_below(1, now, 5);
        assert!(c.estimate(1, now + wait) < 5.0);
        assert!(c.estimate(1, now + wait - 50) >= 5.0);
        // Below the limit already: no wait.
        assert_eq!(c.time_until_below(1, now, 11), 0);
        assert_eq!(c.time_until_below(2, now, 1), 0);
        // Carried over from the previous window.
        let later = 70_000;
        let wait = c.time_until_below(1, later, 5);
        assert!(c.estimate(1, later + wait) < 5.0);
        assert!(c.estimate(1, later + wait - 50) >= 5.0);
    }

    #[test]
    fn memory_is_bounded_and_heavy_counters_survive_a_flood() {
        let c = WindowCounter::new(60_000, 1_600);
        let heavy = 0x0100_0000_0000_0000;
        for _ in 0..50 {
            c.add(heavy, 0);
        }
        // An attacker rotating keys: 200,000 distinct ones.
        for k in 0..200_000u64 {
            c.add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 10);
        }
        assert!(c.tracked() <= 1_600, "{}", c.tracked());
        assert_eq!(c.estimate(heavy, 10), 50.0, "the heavy counter was not evicted");
        c.prune(200_000);
        assert_eq!(c.tracked(), 0);
    }
}
