//! DNS over TCP (RFC 7766): length-prefixed messages, several queries pipelined on one
//! connection (answered in order), an idle timeout (`dns.tcp_idle_timeout`) and a connection
//! limit (`dns.tcp_max_connections`; connections beyond it are closed at once). The same
//! `handler::respond` answers, with a 65535-byte limit, so answers truncated over UDP come
//! whole here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use cdn_shared::shutdown::Shutdown;

use crate::handler::{respond, Context, ThreadCache, Transport};
use crate::querylog::{Entry, QueryLog, Recorder};
use crate::route::Router;

/// TCP settings.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Close a connection idle this long.
    pub idle: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
}

/// Accept connections until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Arc<Router>,
    limits: TcpLimits,
    log: Option<QueryLog>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream); // over the limit: close at once
            continue;
        };
        let router = router.clone();
        let log = log.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            connection(stream, peer, router, limits.idle, log, shutdown).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    idle: Duration,
    log: Option<QueryLog>,
    shutdown: Shutdown,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut cache = ThreadCache::new();
    let mut recorder = Recorder::new();
    let mut query = Vec::new();
    let mut out = Vec::with_capacity(512);
    let mut frame = Vec::with_capacity(514);
    loop {
        let len = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(idle, rd.read_u16()) => match r {
                Ok(Ok(l)) => l as usize,
                _ => return, // idle, closed, or error
            },
        };
        query.resize(len, 0);
        match tokio::time::timeout(idle, rd.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let started = Instant::now();
        let answered = {
            let snap = router.snapshot();
            let view = router.health().view();
            let now_ms = cdn_shared::unix_ms();
            let ctx = Context {
                snap: &snap,
                view: &view,
                now_ms,
            };
            let outcome = respond(ctx, &mut cache, &query, peer.ip(), Transport::Tcp, &mut out);
            if let Some(o) = &outcome {
                recorder.record(&snap, o, started.elapsed().as_secs_f64());
                if let Some(l) = &log {
                    l.log(Entry::new(
                        &snap,
                        o,
                        &query,
                        peer.ip(),
                        Transport::Tcp,
                        now_ms,
                    ));
                }
            }
            outcome.is_some()
        };
        if !answered {
            // Not even a header: nothing sensible to say on this stream.
            return;
        }
        frame.clear();
        frame.extend_from_slice(&(out.len() as u16).to_be_bytes());
        frame.extend_from_slice(&out);
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
}
