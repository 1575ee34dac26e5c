//! DNS over TCP (RFC 7766), served by hickory-server: length-prefixed messages, several
//! queries pipelined on one connection (answered in order), an idle timeout
//! (`dns.tcp_idle_timeout`), a connection limit (`dns.tcp_max_connections`) and a limit per
//! client (`dns.tcp_max_connections_per_client`, an IPv4 address or IPv6 /64; connections
//! beyond either are closed at once), and a maximum lifetime after which even a busy
//! connection is closed (`dns.tcp_max_connection_lifetime`). Each connection has a small answer
//! cache ([`crate::hickory`]), so open connections cost little memory. The answers come from the same `handler::respond` as UDP,
//! through [`crate::hickory::RouterHandler`], with a 65535-byte limit, so answers truncated
//! over UDP come whole here.
//!
//! ## Why our accept loop and not `hickory_server::Server::register_listener`
//!
//! `Server::register_listener` accepts without any bound (one task per connection) and has no
//! hook between `accept` and the connection task, so `dns.tcp_max_connections` could not be
//! enforced. So [`serve`] keeps its own accept loop with a semaphore and the shutdown token,
//! and drives each connection with hickory's public per-connection pieces, the ones `Server`
//! itself uses: `hickory_net::tcp::TcpStream` (framing, writes), `server::TimeoutStream`
//! (idle timeout), `Request::from_bytes`, `ResponseHandle` and our `RequestHandler`. The
//! steps `Server` takes per message (its version is private) are repeated in
//! `handle_frame`: shorter than a header → no answer; a response (QR=1) → no answer;
//! undecodable by hickory → answered from its bytes by our decoder as over UDP
//! (`RouterHandler::handle_raw`: FORMERR with the question when it reads and an OPT when the
//! query had one); else the handler.
//! `Server`'s `ReportingResponseHandler`, which logs every request at INFO, is not in this
//! path, so TCP queries leave no log line (metrics and the query log count them).
//!
//! Behaviour set by hickory: a zero-length frame or a frame cut by EOF closes the connection;
//! a frame too short for a header, or a response, is ignored and the connection stays open.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_proto::op::{Header, MessageType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{
    Request, RequestHandler, ResponseHandle, ResponseHandler, TimeoutStream,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use cdn_shared::shutdown::Shutdown;

use crate::hickory::RouterHandler;
use crate::live::Router;
use crate::querylog::QueryLog;

/// TCP settings.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Close a connection idle this long.
    pub idle: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Concurrent connections from one client (an IPv4 address, an IPv6 /64).
    pub max_per_client: usize,
    /// Close a connection this long after it was accepted, busy or not.
    pub max_lifetime: Duration,
}

/// Open connections per client, for `dns.tcp_max_connections_per_client`. An entry exists only
/// while its client has a connection open, so the map holds at most `tcp_max_connections`
/// entries; it is touched at accept and close, never per query.
#[derive(Debug, Default)]
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// The client a connection counts against: the IPv4 address, or the IPv6 /64 (one host is
/// usually given a whole /64).
fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))),
    }
}

impl PerClient {
    /// Count a new connection from `peer`; `None` when the client is at `max`.
    fn admit(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<ClientSlot> {
        let client = client_of(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            client,
        })
    }
}

/// One admitted connection's place in [`PerClient`]; released on drop.
#[derive(Debug)]
struct ClientSlot {
    table: Arc<PerClient>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Responses queued per connection before they are written (answers are written in order
/// before the next query is read, so one is the most ever waiting).
const RESPONSE_QUEUE: usize = 4;

/// Accept connections until `shutdown`; each connection ends at `shutdown` too.
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
    let per_client = Arc::new(PerClient::default());
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
            limited("max_connections");
            continue;
        };
        let Some(slot) = per_client.admit(peer.ip(), limits.max_per_client) else {
            drop(stream); // this client is at its limit: close at once
            limited("per_client");
            continue;
        };
        let handler = RouterHandler::new(router.clone(), log.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection(stream, peer, &handler, limits.idle) => {}
                _ = tokio::time::sleep(limits.max_lifetime) => {
                    tracing::debug!(%peer, "tcp: connection closed at dns.tcp_max_connection_lifetime");
                    limited("lifetime");
                }
            }
        });
    }
}

fn limited(reason: &'static str) {
    metrics::counter!(crate::metrics::names::DNS_TCP_LIMITED, "reason" => reason).increment(1);
}

/// One connection: frames in, answers out in order, until EOF, an error or `idle` without a
/// complete frame.
async fn connection(stream: TcpStream, peer: SocketAddr, handler: &RouterHandler, idle: Duration) {
    let (frames, sender) = hickory_server::net::tcp::TcpStream::from_stream_with_buffer_size(
        AsyncIoTokioAsStd(stream),
        peer,
        RESPONSE_QUEUE,
    );
    let mut frames = TimeoutStream::new(frames, idle);
    // Polling for the next frame also writes the queued answers.
    while let Some(frame) = frames.next().await {
        let Ok(frame) = frame else {
            return; // idle, closed mid-frame, or an I/O error
        };
        let (bytes, _) = frame.into_parts();
        let response = ResponseHandle::new(peer, sender.clone(), Protocol::Tcp);
        handle_frame(handler, bytes, peer, response).await;
    }
}

/// One message, as `hickory_server::Server` handles it.
async fn handle_frame(
    handler: &RouterHandler,
    bytes: Vec<u8>,
    peer: SocketAddr,
    response: impl ResponseHandler,
) {
    let started = Instant::now();
    let header = match Header::read(&mut BinDecoder::new(&bytes)) {
        Ok(h) => h,
        Err(_) => return, // shorter than a header: nothing to answer
    };
    if header.metadata.message_type == MessageType::Response {
        return; // never answer responses (reflection)
    }
    match Request::from_bytes(bytes.clone(), peer, Protocol::Tcp) {
        Ok(request) => {
            handler
                .handle_request::<_, TokioTime>(&request, response)
                .await;
        }
        Err(e) => {
            // Answered from the bytes as UDP answers them (our decoder: FORMERR with the
            // question and an OPT when the query had one).
            tracing::debug!(%peer, error = %e, "tcp: query hickory cannot decode");
            handler
                .handle_raw(&bytes, peer.ip(), started, response)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_counted_and_released() {
        let t = Arc::new(PerClient::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = t.admit(a, 2).unwrap();
        let second = t.admit(a, 2).unwrap();
        assert!(t.admit(a, 2).is_none(), "third from the same address");
        assert!(t.admit(b, 2).is_some(), "another address has its own count");
        drop(first);
        let third = t.admit(a, 2).unwrap();
        drop((second, third));
        assert!(
            t.open.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
        // IPv6: one /64 is one client.
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = t.admit(x, 1).unwrap();
        assert!(t.admit(y, 1).is_none());
        assert!(t.admit(z, 1).is_some());
    }
}
