//! Waiting without sleeping as synchronisation: poll a condition until it holds or a deadline
//! passes. Every deadline is multiplied by `CDN_TEST_PATIENCE` (a float, default 1.0) so a slow
//! CI machine can stretch all of them at once.

use std::time::{Duration, Instant};

/// The patience multiplier from `CDN_TEST_PATIENCE` (default 1.0; bad or non-positive values
/// are ignored).
pub fn patience() -> f64 {
    std::env::var("CDN_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p > 0.0)
        .unwrap_or(1.0)
}

/// `d` × [`patience`].
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(patience())
}

/// Poll `f` every `interval` until it returns `Ok`, for at most `timeout` (scaled by
/// [`patience`]). On timeout the error says what was awaited, how long, and `f`'s last error.
pub fn eventually_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let timeout = scaled(timeout);
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => {
                if start.elapsed() >= timeout {
                    return Err(e.context(format!(
                        "timed out after {:.1?} ({attempts} attempts) waiting for: {what}",
                        start.elapsed()
                    )));
                }
            }
        }
        std::thread::sleep(interval.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// [`eventually_every`] polling every 25 ms.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    eventually_every(what, timeout, Duration::from_millis(25), f)
}

/// Poll the predicate `f` every 10 ms until it holds, for at most `timeout` (scaled by
/// [`patience`]); returns how long it took. The error names `what` and the scaled timeout.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let timeout = scaled(timeout);
    let start = Instant::now();
    loop {
        if f() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!("timed out after {timeout:.1?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`wait_until`] for async tests: the same deadline rule, polling with `tokio::time::sleep`
/// so the runtime's workers stay free.
pub async fn wait_until_async(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let timeout = scaled(timeout);
    let start = Instant::now();
    loop {
        if f() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!("timed out after {timeout:.1?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Check that `f` keeps returning `Ok` for the whole `period` (not scaled: it is a
/// minimum, not a deadline), polling every `interval`. Fails on the first `Err`.
pub fn always<T>(
    what: &str,
    period: Duration,
    interval: Duration,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < period {
        f().map_err(|e| {
            e.context(format!(
                "stopped holding after {:.1?}: {what}",
                start.elapsed()
            ))
        })?;
        std::thread::sleep(interval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_the_first_success() {
        let mut n = 0;
        let v = eventually("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            if n >= 3 {
                Ok(n)
            } else {
                anyhow::bail!("n is {n}")
            }
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn eventually_times_out_with_the_last_error() {
        let err = eventually_every(
            "never",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || -> anyhow::Result<()> { anyhow::bail!("still no") },
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("waiting for: never"), "{text}");
        assert!(text.contains("still no"), "{text}");
    }

    #[test]
    fn wait_until_reports_success_and_timeout() {
        let mut n = 0;
        wait_until("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            n >= 3
        })
        .unwrap();
        assert_eq!(n, 3);
        let err = wait_until("never", Duration::from_millis(30), || false).unwrap_err();
        assert!(format!("{err:#}").contains("waiting for: never"), "{err:#}");
    }

    #[tokio::test]
    async fn wait_until_async_reports_success_and_timeout() {
        let mut n = 0;
        wait_until_async("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            n >= 3
        })
        .await
        .unwrap();
        assert_eq!(n, 3);
        let err = wait_until_async("never", Duration::from_millis(30), || false)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("waiting for: never"), "{err:#}");
    }

    #[test]
    fn always_fails_on_the_first_error() {
        let mut n = 0;
        let r = always(
            "n below 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                anyhow::ensure!(n < 3, "n is {n}");
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(n, 3);
    }
}
