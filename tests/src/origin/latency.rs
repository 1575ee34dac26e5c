//! Response delays: a fixed `?delay_ms=` per request, or the `--latency-profile` distribution
//! (p50 within 1–20 ms, p90 within 21–50 ms, p95 within 51–150 ms, p99 within 151–500 ms).

use std::time::Duration;

/// The latency profile as (cumulative probability, min ms, max ms) buckets.
const PROFILE: &[(f64, u64, u64)] = &[
    (0.50, 1, 20),
    (0.90, 21, 50),
    (0.95, 51, 150),
    (1.00, 151, 500),
];

/// Map a uniform sample `u` in [0, 1) and a second uniform `v` in [0, 1) to a delay from the
/// profile (pure, so the distribution is testable).
pub fn profile_delay(u: f64, v: f64) -> Duration {
    let (_, lo, hi) = PROFILE
        .iter()
        .copied()
        .find(|(p, _, _)| u < *p)
        .unwrap_or(PROFILE[PROFILE.len() - 1]);
    let ms = lo + ((hi - lo + 1) as f64 * v.clamp(0.0, 0.999_999)) as u64;
    Duration::from_millis(ms.min(hi))
}

/// Draw one delay from the profile.
pub fn sample() -> Duration {
    profile_delay(rand::random::<f64>(), rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_map_to_their_ranges() {
        assert_eq!(profile_delay(0.0, 0.0), Duration::from_millis(1));
        assert_eq!(profile_delay(0.49, 0.9999999), Duration::from_millis(20));
        assert_eq!(profile_delay(0.5, 0.0), Duration::from_millis(21));
        assert_eq!(profile_delay(0.89, 1.0), Duration::from_millis(50));
        assert_eq!(profile_delay(0.9, 0.0), Duration::from_millis(51));
        assert_eq!(profile_delay(0.96, 0.0), Duration::from_millis(151));
        assert_eq!(profile_delay(0.9999, 1.0), Duration::from_millis(500));
    }

    #[test]
    fn sampled_percentiles_fall_in_the_profile() {
        let mut v: Vec<u64> = (0..20_000).map(|_| sample().as_millis() as u64).collect();
        v.sort_unstable();
        let pct = |p: f64| v[((v.len() as f64) * p) as usize];
        assert!((1..=20).contains(&pct(0.45)), "p45 {}", pct(0.45));
        assert!((21..=50).contains(&pct(0.85)), "p85 {}", pct(0.85));
        assert!((151..=500).contains(&pct(0.99)), "p99 {}", pct(0.99));
        assert!(*v.last().unwrap() <= 500);
    }
}
