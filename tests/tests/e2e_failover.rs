//! Issue 7 §2, failover: an edge that dies, hangs, or whose health probe answers 503 leaves
//! the answers within probe interval × fall (500 ms × 3), its region's clients get the next
//! nearest healthy edge, and it comes back after `rise` good probes.
//!
//! Geography: us-east's next nearest region is eu-west (≈5 500 km, vs ≈11 000 km to
//! ap-northeast).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cdn_tests::fleet::{spec, Fleet};
use cdn_tests::harness::{always, eventually_every, scaled, Signal};

const US: &str = "8.8.8.0/24";

/// Poll the answer for `US` until `pred` holds; return how long it took and the answer.
fn until_answer(
    fleet: &Fleet,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[Ipv4Addr]) -> bool,
) -> anyhow::Result<(Duration, Vec<Ipv4Addr>)> {
    let t0 = Instant::now();
    let a = eventually_every(what, timeout, Duration::from_millis(20), || {
        let a = fleet.resolve(US)?;
        anyhow::ensure!(pred(&a), "answer is {a:?}");
        Ok(a)
    })?;
    Ok((t0.elapsed(), a))
}

fn excluded_reason(fleet: &Fleet) -> anyhow::Result<String> {
    let c = fleet.explain_candidate(0, US, "us-east")?;
    anyhow::ensure!(c["chosen"] == false, "us-east still chosen: {c}");
    Ok(c["excluded"].to_string())
}

#[test]
fn a_killed_edge_leaves_the_answers_and_returns_after_restart() {
    Fleet::builder().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let us = fleet.edge("us-east").ip();
        let eu = fleet.edge("eu-west").ip();
        assert_eq!(fleet.resolve(US)?, vec![us]);

        fleet.kill_edge("us-east")?;
        let (took, answer) = until_answer(fleet, "us-east leaves", Duration::from_secs(5), |a| {
            !a.contains(&us)
        })?;
        eprintln!("killed edge left the answers after {took:?}");
        assert_eq!(
            answer,
            vec![eu],
            "us-east clients go to the next nearest edge"
        );
        assert!(
            took <= scaled(Duration::from_millis(2000)),
            "failover took {took:?} (> probe interval × fall = 1.5 s, + jitter)"
        );
        always(
            "us-east stays out while dead",
            Duration::from_secs(1),
            Duration::from_millis(50),
            || {
                anyhow::ensure!(!fleet.resolve(US)?.contains(&us));
                Ok(())
            },
        )?;
        let reason = excluded_reason(fleet)?;
        assert!(
            reason.contains("down"),
            "explain names the reason: {reason}"
        );
        // The other regions are untouched.
        assert_eq!(
            fleet.resolve(spec::demo_subnet("ap-northeast").unwrap())?,
            vec![fleet.edge("ap-northeast").ip()]
        );

        fleet.restart_edge("us-east")?;
        let (back, _) = until_answer(fleet, "us-east returns", Duration::from_secs(5), |a| {
            a == [us]
        })?;
        eprintln!("restarted edge returned {back:?} after ready");
        Ok(())
    });
}

#[test]
fn a_hung_edge_leaves_the_answers_and_returns_when_it_resumes() {
    Fleet::builder().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let us = fleet.edge("us-east").ip();
        let eu = fleet.edge("eu-west").ip();

        // SIGSTOP: the kernel still accepts TCP connections on its sockets; nothing answers.
        fleet.signal_edge("us-east", Signal::STOP)?;
        let (took, answer) =
            until_answer(fleet, "hung us-east leaves", Duration::from_secs(6), |a| {
                !a.contains(&us)
            })?;
        eprintln!("hung edge left the answers after {took:?}");
        assert_eq!(answer, vec![eu]);
        // fall × (interval + timeout) + jitter is the worst case for timeouts.
        assert!(took <= scaled(Duration::from_millis(2800)), "took {took:?}");

        fleet.signal_edge("us-east", Signal::CONT)?;
        let (back, _) = until_answer(fleet, "us-east returns", Duration::from_secs(5), |a| {
            a == [us]
        })?;
        eprintln!("resumed edge returned after {back:?}");
        Ok(())
    });
}

#[test]
fn an_edge_whose_probe_answers_503_leaves_the_answers() {
    // us-east's probe goes to the demo origin, which answers 503 while its fail switch is on;
    // the edge itself keeps running (and reporting), so only the probe decides.
    Fleet::builder()
        .probe_url("us-east", "{origin}/obj/1/probe-use1?cc=no-store")
        .run(|fleet| {
            fleet.wait_all_up(Duration::from_secs(10))?;
            let us = fleet.edge("us-east").ip();
            let eu = fleet.edge("eu-west").ip();
            assert_eq!(fleet.resolve(US)?, vec![us]);

            fleet
                .origin()
                .state()
                .set_fail(Some(cdn_tests::origin::FailMode::Unavailable));
            let (took, answer) = until_answer(
                fleet,
                "us-east leaves on 503",
                Duration::from_secs(5),
                |a| !a.contains(&us),
            )?;
            eprintln!("503-probed edge left the answers after {took:?}");
            assert_eq!(answer, vec![eu]);
            assert!(took <= scaled(Duration::from_millis(2000)), "took {took:?}");
            let reason = excluded_reason(fleet)?;
            assert!(reason.contains("down"), "{reason}");

            fleet.origin().state().set_fail(None);
            let (back, _) = until_answer(fleet, "us-east returns", Duration::from_secs(5), |a| {
                a == [us]
            })?;
            eprintln!("edge returned {back:?} after its probe recovered");
            assert!(
                back >= Duration::from_millis(400),
                "rise 2 needs two good probes: {back:?}"
            );
            Ok(())
        });
}
