//! Issue 7 §3, load spill: an edge that reports load above its capacity stops receiving new
//! answers for its region's clients until its reports fall below capacity again (with
//! hysteresis: no flapping while the load lasts), and the explain API says why.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdn_shared::report::Capacity;
use cdn_tests::fleet::Fleet;
use cdn_tests::harness::{always, eventually, eventually_every};

const US: &str = "8.8.8.0/24";

#[test]
fn an_overloaded_edge_spills_to_the_next_region_until_its_load_falls() {
    Fleet::builder()
        .capacity(
            "us-east",
            Capacity {
                requests_per_sec: Some(20.0),
                ..Default::default()
            },
        )
        .run(|fleet| {
            fleet.wait_all_up(Duration::from_secs(10))?;
            let us = fleet.edge("us-east");
            let eu = fleet.edge("eu-west").ip();
            assert_eq!(fleet.resolve(US)?, vec![us.ip()]);
            let c = fleet.explain_candidate(0, US, "us-east")?;
            assert_eq!(c["overloaded"], false, "{c}");

            // Load: two clients fetching a cached object as fast as they can (hundreds of req/s).
            us.get("/obj/1k/load")?;
            let stop = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let addr = us.http_addr();
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let stop = stop.clone();
                    let sent = sent.clone();
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let _ = cdn_tests::harness::http::get(addr, "/obj/1k/load")
                                .host(cdn_tests::fleet::SERVICE)
                                .send();
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let stop_load = || {
                stop.store(true, Ordering::Relaxed);
            };

            let spilled = eventually_every(
                "us-east clients spill to eu-west",
                Duration::from_secs(5),
                Duration::from_millis(20),
                || {
                    let a = fleet.resolve(US)?;
                    anyhow::ensure!(a == [eu], "answer {a:?}");
                    Ok(())
                },
            );
            if spilled.is_err() {
                stop_load();
            }
            spilled?;
            let c = fleet.explain_candidate(0, US, "us-east")?;
            assert_eq!(c["overloaded"], true, "explain says overloaded: {c}");
            assert_eq!(c["chosen"], false, "{c}");
            // No flapping while the load lasts.
            let steady = always(
                "spilled while overloaded",
                Duration::from_millis(1500),
                Duration::from_millis(25),
                || {
                    let a = fleet.resolve(US)?;
                    anyhow::ensure!(a == [eu], "flapped back to {a:?}");
                    Ok(())
                },
            );
            stop_load();
            for w in workers {
                let _ = w.join();
            }
            steady?;
            eprintln!("load generated: {} requests", sent.load(Ordering::Relaxed));

            eventually(
                "us-east returns once its load falls",
                Duration::from_secs(5),
                || {
                    let a = fleet.resolve(US)?;
                    anyhow::ensure!(a == [us.ip()], "answer {a:?}");
                    Ok(())
                },
            )?;
            let c = fleet.explain_candidate(0, US, "us-east")?;
            assert_eq!(c["overloaded"], false, "{c}");
            Ok(())
        });
}
