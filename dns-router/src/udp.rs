//! The UDP fast path: one OS thread per SO_REUSEPORT socket, a blocking receive/answer/send
//! loop with a reused buffer, no task hop and no channel. Each thread keeps its own answer
//! cache (`handler::ThreadCache`) and metric handles, so the steady state takes no lock and
//! allocates nothing but what a cache miss builds.
//!
//! The socket has a short read timeout so the thread notices shutdown.

use std::net::UdpSocket;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cdn_shared::shutdown::Shutdown;

use crate::handler::{respond, Context, ThreadCache, Transport};
use crate::querylog::{Entry, QueryLog, Recorder};
use crate::route::Router;

/// How often a blocked thread checks for shutdown.
const POLL: Duration = Duration::from_millis(100);

/// Largest UDP query we read (bigger datagrams are cut and then fail to parse).
const MAX_QUERY: usize = 4096;

/// Start one thread serving `socket`.
pub fn spawn(
    index: usize,
    socket: UdpSocket,
    router: Arc<Router>,
    log: Option<QueryLog>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    socket.set_read_timeout(Some(POLL))?;
    std::thread::Builder::new()
        .name(format!("dns-udp-{index}"))
        .spawn(move || serve(socket, router, log, shutdown))
}

fn serve(socket: UdpSocket, router: Arc<Router>, log: Option<QueryLog>, shutdown: Shutdown) {
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(1500);
    let mut cache = ThreadCache::new();
    let mut recorder = Recorder::new();
    let mut epoch = 0u64;
    while !shutdown.is_cancelled() {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let started = Instant::now();
        let snap = router.snapshot();
        if snap.epoch != epoch {
            recorder.reset();
            epoch = snap.epoch;
        }
        let view = router.health().view();
        let now_ms = cdn_shared::unix_ms();
        let ctx = Context {
            snap: &snap,
            view: &view,
            now_ms,
        };
        let packet = &buf[..n];
        let Some(outcome) = respond(ctx, &mut cache, packet, src.ip(), Transport::Udp, &mut out)
        else {
            continue;
        };
        if let Err(e) = socket.send_to(&out, src) {
            tracing::debug!(error = %e, "udp send error");
        }
        recorder.record(&snap, &outcome, started.elapsed().as_secs_f64());
        if let Some(l) = &log {
            l.log(Entry::new(
                &snap,
                &outcome,
                packet,
                src.ip(),
                Transport::Udp,
                now_ms,
            ));
        }
    }
}
