//! Per-client rate limits: one token bucket (GCRA: a "theoretical arrival time" per client)
//! per IPv4 address or IPv6 /64, in a map of bounded size.
//!
//! Memory: at most `max_clients` entries (≈ 64 bytes each in the map). A client whose bucket
//! is full again (`tat <= now`) is indistinguishable from an absent one, so when the map is
//! full such entries are swept (at most every 100 ms); if it is still full of active clients,
//! new clients share one overflow bucket with the same rate and burst, so the limit still holds
//! for them in aggregate while known clients keep their own.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;

const SWEEP_EVERY_NS: u64 = 100_000_000;

/// A host's limiter.
#[derive(Debug)]
pub struct RateLimiter {
    /// Nanoseconds between requests at the sustained rate (T).
    interval_ns: u64,
    /// How far ahead of now the arrival time may run: (burst − 1) × T.
    tolerance_ns: u64,
    max: usize,
    map: DashMap<u128, u64>,
    overflow: Mutex<u64>,
    last_sweep: AtomicU64,
}

/// The bucket key: an IPv4 address, or an IPv6 /64.
pub fn client_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => (1u128 << 64) | u128::from(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (1u128 << 64) | u128::from(u32::from(v4)),
            None => u128::from(a) >> 64,
        },
    }
}

impl RateLimiter {
    /// `rate` requests per second sustained, `burst` at once, `max` clients tracked.
    pub fn new(rate: f64, burst: u32, max: usize) -> RateLimiter {
        let interval_ns = (1e9 / rate).clamp(1.0, 1e18) as u64;
        RateLimiter {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.saturating_sub(1))),
            max: max.max(1),
            map: DashMap::new(),
            overflow: Mutex::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// One GCRA step on `tat`: `Ok(new tat)` or `Err(wait)`.
    fn step(&self, tat: u64, now: u64) -> Result<u64, u64> {
        let tat = tat.max(now);
        let limit = now.saturating_add(self.tolerance_ns);
        if tat > limit {
            return Err(tat - limit);
        }
        Ok(tat.saturating_add(self.interval_ns))
    }

    /// Admit one request from `ip` at monotonic time `now_ns`, or say how long to wait.
    pub fn check(&self, ip: IpAddr, now_ns: u64) -> Result<(), Duration> {
        let key = client_key(ip);
        if let Some(mut tat) = self.map.get_mut(&key) {
            return match self.step(*tat, now_ns) {
                Ok(t) => {
                    *tat = t;
                    Ok(())
                }
                Err(w) => Err(Duration::from_nanos(w)),
            };
        }
        if self.map.len() >= self.max {
            self.sweep(now_ns);
        }
        if self.map.len() >= self.max {
            let mut tat = self.overflow.lock();
            return match self.step(*tat, now_ns) {
                Ok(t) => {
                    *tat = t;
                    Ok(())
                }
                Err(w) => Err(Duration::from_nanos(w)),
            };
        }
        // A fresh bucket admits the first request.
        let t = self.step(now_ns, now_ns).unwrap_or(now_ns);
        self.map.insert(key, t);
        Ok(())
    }

    /// Drop clients whose bucket is full again, at most every 100 ms.
    fn sweep(&self, now_ns: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ns.saturating_sub(last) < SWEEP_EVERY_NS && last != 0 {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now_ns.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.map.retain(|_, tat| *tat > now_ns);
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No client tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_rate_then_recovery() {
        let l = RateLimiter::new(20.0, 40, 100);
        let t0 = 10 * S;
        for i in 0..40 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok(), "request {i}");
        }
        let wait = l.check(ip("10.0.0.1"), t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(50));
        // Another client is not affected.
        assert!(l.check(ip("10.0.0.2"), t0).is_ok());
        // 50 ms later one more token.
        assert!(l.check(ip("10.0.0.1"), t0 + S / 20).is_ok());
        assert!(l.check(ip("10.0.0.1"), t0 + S / 20).is_err());
        // After 2 s the whole burst is back.
        for _ in 0..40 {
            assert!(l.check(ip("10.0.0.1"), t0 + 3 * S).is_ok());
        }
        assert!(l.check(ip("10.0.0.1"), t0 + 3 * S).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let l = RateLimiter::new(1.0, 1, 100);
        assert!(l.check(ip("2001:db8:1:2::1"), S).is_ok());
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), S).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), S).is_ok());
        assert_eq!(
            client_key(ip("::ffff:10.0.0.1")),
            client_key(ip("10.0.0.1"))
        );
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let l = RateLimiter::new(10.0, 5, 1000);
        let mut now = S;
        for i in 0..200_000u32 {
            let a = IpAddr::from(i.to_be_bytes());
            let _ = l.check(a, now);
            now += 1_000; // 1 µs apart: most buckets are still active when the map fills
            assert!(l.len() <= 1000);
        }
    }

    #[test]
    fn overflow_bucket_limits_new_clients_when_full() {
        let l = RateLimiter::new(1.0, 2, 2);
        let t = 5 * S;
        assert!(l.check(ip("10.0.0.1"), t).is_ok());
        assert!(l.check(ip("10.0.0.2"), t).is_ok());
        // Map full of active clients: newcomers share one bucket of burst 2.
        assert!(l.check(ip("10.0.0.3"), t).is_ok());
        assert!(l.check(ip("10.0.0.4"), t).is_ok());
        assert!(l.check(ip("10.0.0.5"), t).is_err());
        // Once the known buckets are full again they are swept and newcomers get their own.
        assert!(l.check(ip("10.0.0.6"), t + 10 * S).is_ok());
        assert!(l.len() <= 2);
    }

    #[test]
    fn extreme_rates_do_not_overflow() {
        let l = RateLimiter::new(1e-9, u32::MAX, 10);
        assert!(l.check(ip("10.0.0.1"), u64::MAX - 5).is_ok());
        let l = RateLimiter::new(1e9, 1, 10);
        assert!(l.check(ip("10.0.0.1"), u64::MAX).is_ok());
        let _ = l.check(ip("10.0.0.1"), u64::MAX);
    }
}
