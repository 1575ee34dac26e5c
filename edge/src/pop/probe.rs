//! Membership health and load: every `cluster.probe_interval` this edge measures its own load
//! (requests/s over the last second or more, from the load meter) and probes every other member of its
//! PoP and of the shield regions with `GET http://<address>/healthz` (`Host:
//! pop-probe.invalid`, which no edge serves, so the client listener answers its health): 200
//! within `cluster.probe_timeout` is a success and its `CDN-Pop-Load` the member's load.
//! `cluster.fall` failures in a row mark a member down, `cluster.rise` successes up
//! ([`super::health_step`]). A draining member answers 503 and so leaves the PoP.
//!
//! Runs on the actix system's main arbiter (awc clients are per thread).

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use cdn_shared::shutdown::Shutdown;

use super::{Member, Pop, CDN_POP_LOAD};
use crate::load::LoadMeter;

/// Shortest window the own load (requests/s) is measured over.
const LOAD_WINDOW_S: f64 = 1.0;

/// Start the probe loop.
pub fn spawn(
    pop: Arc<Pop>,
    load: Arc<LoadMeter>,
    shutdown: Shutdown,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(run(pop, load, shutdown))
}

async fn run(pop: Arc<Pop>, load: Arc<LoadMeter>, shutdown: Shutdown) {
    let t = pop.cfg.probe_timeout;
    let client = awc::Client::builder()
        .connector(awc::Connector::new().timeout(t).limit(64))
        .timeout(t)
        .disable_redirects()
        .no_default_headers()
        .finish();
    let mut prev = (Instant::now(), load.requests_total());
    let mut tick = tokio::time::interval(pop.cfg.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Own load: requests/s over the last second or more (shorter windows are noise).
        let now = Instant::now();
        let n = load.requests_total();
        let secs = now.duration_since(prev.0).as_secs_f64();
        if secs >= LOAD_WINDOW_S {
            pop.myself()
                .set_load(n.saturating_sub(prev.1) as f64 / secs);
            prev = (now, n);
        }
        let members: Vec<&Member> = pop.others().collect();
        let results =
            futures_util::future::join_all(members.iter().map(|m| probe(&client, m))).await;
        for (m, (ok, l)) in members.iter().zip(results) {
            if m.probed(ok, l, pop.cfg.rise, pop.cfg.fall) {
                tracing::info!(member = %m.id, up = m.is_up(), "PoP member health changed");
            }
            metrics::gauge!(crate::metrics::POP_MEMBER_UP, "member" => m.id.clone())
                .set(if m.is_up() { 1.0 } else { 0.0 });
        }
    }
}

/// One probe: (success, load when it said).
async fn probe(client: &awc::Client, m: &Member) -> (bool, Option<f64>) {
    let url = format!("http://{}/healthz", m.address);
    let res = client
        .get(url.as_str())
        .insert_header((header::HOST, "pop-probe.invalid"))
        .send()
        .await;
    let Ok(mut resp) = res else {
        return (false, None);
    };
    let load = resp
        .headers()
        .get(CDN_POP_LOAD)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    // Read the small body so the connection can be reused.
    let _ = resp.body().limit(4096).await;
    (resp.status().as_u16() == 200, load)
}
