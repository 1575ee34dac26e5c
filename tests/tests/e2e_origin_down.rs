//! Issue 7 §6, origin down: fresh content is still served, stale content is served within
//! its stale-if-error window (never a 5xx while it may be), and not beyond it.

use std::time::{Duration, Instant};

use cdn_tests::fleet::{EdgeNode, Fleet};
use cdn_tests::harness::eventually;
use cdn_tests::origin::FailMode;

fn warm(edge: &EdgeNode, path: &str) -> anyhow::Result<()> {
    eventually(&format!("{path} cached"), Duration::from_secs(5), || {
        let r = edge.get(path)?;
        anyhow::ensure!(
            r.status == 200 && r.is_hit(),
            "{} {:?}",
            r.status,
            r.cache_status()
        );
        Ok(())
    })
}

#[test]
fn fresh_content_is_served_while_the_origin_fails() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let us = fleet.edge("us-east");
        let path = "/obj/4k/fresh";
        warm(us, path)?;
        for mode in [FailMode::Unavailable, FailMode::Close] {
            fleet.origin().state().set_fail(Some(mode));
            let r = us.get(path)?;
            assert_eq!(r.status, 200, "{mode:?}");
            assert!(r.is_hit(), "{mode:?}: {:?}", r.cache_status());
            assert_eq!(r.body.len(), 4096);
        }
        fleet.origin().state().set_fail(None);
        assert_eq!(
            fleet.origin_stats().path(path),
            1,
            "no origin fetch while fresh"
        );
        Ok(())
    });
}

#[test]
fn stale_content_is_served_within_stale_if_error_and_not_after() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let us = fleet.edge("us-east");
        // Fresh for 1 s, then usable on error for 3 s more.
        let path = "/obj/4k/sie?cc=public,%20max-age=1,%20stale-if-error=3";
        let filled = Instant::now();
        warm(us, path)?;
        fleet.origin().state().set_fail(Some(FailMode::Unavailable));

        // Until the window closes: every answer is a 200 (fresh hit, then stale-if-error).
        let mut saw_stale = false;
        let mut first_error = None;
        while filled.elapsed() < Duration::from_secs(10) {
            let r = us.get(path)?;
            if r.status == 200 {
                assert!(
                    first_error.is_none(),
                    "200 after the window closed: {:?}",
                    r.cache_status()
                );
                assert_eq!(r.body.len(), 4096);
                let cs = r.cache_status().unwrap_or_default().to_string();
                if cs.contains("stale") {
                    saw_stale = true;
                }
            } else {
                assert!(r.status >= 500, "unexpected {}", r.status);
                if first_error.is_none() {
                    first_error = Some(filled.elapsed());
                }
                // Switch the close mode on too: still an error, never a hang.
                fleet.origin().state().set_fail(Some(FailMode::Close));
            }
            if first_error.is_some_and(|t| filled.elapsed() > t + Duration::from_millis(500)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            saw_stale,
            "stale content was served while the origin failed"
        );
        let first_error = first_error.expect("the window closed");
        eprintln!("first 5xx {first_error:?} after the fill (max-age 1 s + stale-if-error 3 s)");
        // The origin's Date has 1 s resolution, so the edge may count up to 1 s of age at fill.
        assert!(
            first_error >= Duration::from_millis(2900),
            "a 5xx at {first_error:?}, inside the stale-if-error window"
        );
        Ok(())
    });
}

#[test]
fn stale_if_error_also_covers_a_connection_closed_by_the_origin() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let us = fleet.edge("us-east");
        let path = "/obj/4k/sie-close?cc=public,%20max-age=1,%20stale-if-error=60";
        warm(us, path)?;
        fleet.origin().state().set_fail(Some(FailMode::Close));
        let r = eventually(
            "stale served on a closed connection",
            Duration::from_secs(5),
            || {
                let r = us.get(path)?;
                anyhow::ensure!(r.status == 200, "a {} while stale content exists", r.status);
                anyhow::ensure!(
                    r.cache_status().is_some_and(|c| c.contains("stale")),
                    "not stale yet: {:?}",
                    r.cache_status()
                );
                Ok(r)
            },
        )?;
        assert_eq!(r.body.len(), 4096);
        Ok(())
    });
}
