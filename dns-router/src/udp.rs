//! The UDP fast path: one OS thread per SO_REUSEPORT socket, a blocking loop that receives a
//! batch of queries with one `recvmmsg` (waiting for the first, then taking whatever else is
//! queued: `MSG_WAITFORONE`), answers each into its own reused buffer, and sends the batch back
//! with one `sendmmsg`. No task hop, no channel, no lock; each thread keeps its own answer
//! cache (`handler::ThreadCache`) and metric handles. A batch is answered under one config
//! snapshot, health view and wall-clock reading; the answer time of each of its queries
//! (`cdn_dns_answer_seconds`) is the batch's: from the start of its answering to the end of
//! the `sendmmsg` that sent it (what the client waits for once the query is read; two clock
//! readings per batch). The batch's counts go to the shared metrics once, at its end
//! (`querylog::Recorder::flush`). The batched calls come from `nix`'s safe wrappers (this
//! crate forbids `unsafe`), with the socket family's own address type (16 bytes for IPv4
//! rather than a 128-byte `sockaddr_storage` per message).
//!
//! After an answer is written, response-rate limiting (`rrl.rs`, the thread's own bucket
//! table) decides whether it is sent, dropped, or sent as an empty TC=1 answer ("slip").
//!
//! The socket has a short read timeout so the thread notices shutdown.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrLike,
};
use std::io::{IoSlice, IoSliceMut};

use cdn_shared::shutdown::Shutdown;

use crate::cookies::CookieState;
use crate::handler::{respond, Context, ThreadCache, Transport};
use crate::live::Router;
use crate::querylog::{Entry, QueryLog, Recorder};
use crate::rrl::{self, RateLimiter, Verdict};

/// How often a blocked thread checks for shutdown.
const POLL: Duration = Duration::from_millis(100);

/// Largest UDP query we read (bigger datagrams are cut and then fail to parse).
const MAX_QUERY: usize = 4096;

/// Queries received (and answers sent) per system call, at most.
pub const BATCH: usize = 32;

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

/// The address type of one socket family, as `nix` reads and writes it.
trait Peer: SockaddrLike + Copy {
    /// The address's IP.
    fn peer_ip(&self) -> IpAddr;
}

impl Peer for SockaddrIn {
    fn peer_ip(&self) -> IpAddr {
        IpAddr::V4(self.ip())
    }
}

impl Peer for SockaddrIn6 {
    fn peer_ip(&self) -> IpAddr {
        IpAddr::V6(self.ip())
    }
}

/// Per-thread state of the answering side of the loop.
struct Answerer {
    router: Arc<Router>,
    log: Option<QueryLog>,
    cache: ThreadCache,
    recorder: Recorder,
    rrl: RateLimiter,
    epoch: u64,
}

impl Answerer {
    /// Answer the `received` batch (lengths and sources of `bufs`) into `outs`; the indexes of
    /// the answers to send go to `ready`, their destinations to `dests`. One snapshot, health
    /// view and wall-clock reading serve the whole batch (the queries arrived together). Each
    /// answer is counted here; the batch's time is recorded by the caller once it is sent.
    fn answer_batch<S: Peer>(
        &mut self,
        received: &[(usize, Option<S>)],
        bufs: &[Vec<u8>],
        outs: &mut [Vec<u8>],
        ready: &mut Vec<usize>,
        dests: &mut Vec<Option<S>>,
    ) {
        let snap = self.router.snapshot();
        if snap.epoch != self.epoch {
            self.recorder.reset();
            self.rrl.configure(&snap.rrl);
            self.epoch = snap.epoch;
        }
        let view = self.router.health().load();
        let ctx = Context {
            snap: &snap,
            view: &view,
            now_ms: cdn_shared::unix_ms(),
        };
        // Touch the batch's geo map entries in one tight loop: their cache misses overlap
        // there instead of stalling each answer in turn.
        if let Some(table) = snap.table.get() {
            let mut addrs = [std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED); BATCH];
            let mut n = 0;
            for (i, &(len, _)) in received.iter().enumerate().take(BATCH) {
                if let Some(addr) = crate::wire::peek_ecs(&bufs[i][..len.min(MAX_QUERY)]) {
                    addrs[n] = addr;
                    n += 1;
                }
            }
            let touched = addrs[..n].iter().fold(0u32, |t, &a| t ^ table.touch(a));
            std::hint::black_box(touched);
        }
        for (i, &(len, peer)) in received.iter().enumerate() {
            let Some(peer) = peer else { continue };
            let src = peer.peer_ip();
            let packet = &bufs[i][..len.min(MAX_QUERY)];
            let out = &mut outs[i];
            let Some(mut outcome) = respond(ctx, &mut self.cache, packet, src, Transport::Udp, out)
            else {
                continue;
            };
            // A valid server cookie proves the source address: never limited.
            if self.rrl.enabled() && outcome.cookie != CookieState::Valid {
                let class = rrl::classify(outcome.rcode, outcome.rrl, out);
                match self.rrl.check(src, class, ctx.now_ms) {
                    Verdict::Send => {}
                    Verdict::Drop => continue,
                    Verdict::Slip => {
                        rrl::slip_in_place(out);
                        outcome.truncated = true;
                    }
                }
            }
            self.recorder.count(&snap, &outcome);
            if let Some(l) = &self.log {
                l.log(Entry::new(
                    &snap,
                    &outcome,
                    packet,
                    src,
                    Transport::Udp,
                    ctx.now_ms,
                ));
            }
            ready.push(i);
            dests.push(Some(peer));
        }
    }
}

fn serve(socket: UdpSocket, router: Arc<Router>, log: Option<QueryLog>, shutdown: Shutdown) {
    match socket.local_addr() {
        Ok(SocketAddr::V6(_)) => serve_as::<SockaddrIn6>(socket, router, log, shutdown),
        _ => serve_as::<SockaddrIn>(socket, router, log, shutdown),
    }
}

/// [`serve`] with the socket family's address type `S`.
fn serve_as<S: Peer>(
    socket: UdpSocket,
    router: Arc<Router>,
    log: Option<QueryLog>,
    shutdown: Shutdown,
) {
    let fd = socket.as_raw_fd();
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_QUERY]).collect();
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut rx = MultiHeaders::<S>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<S>::preallocate(BATCH, None);
    let mut received: Vec<(usize, Option<S>)> = Vec::with_capacity(BATCH);
    let mut dests: Vec<Option<S>> = Vec::with_capacity(BATCH);
    let mut ready: Vec<usize> = Vec::with_capacity(BATCH);
    let rrl = RateLimiter::new(&router.snapshot().rrl);
    let mut a = Answerer {
        router,
        log,
        cache: ThreadCache::new(),
        recorder: Recorder::new(),
        rrl,
        epoch: 0,
    };
    while !shutdown.is_cancelled() {
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(b.as_mut_slice())])
                .collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(msgs) => {
                    for m in msgs {
                        received.push((m.bytes, m.address));
                    }
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            }
        }
        ready.clear();
        dests.clear();
        let started = Instant::now();
        a.answer_batch(&received, &bufs, &mut outs, &mut ready, &mut dests);
        send_all(fd, &mut tx, &outs, &ready, &dests);
        a.recorder.time(ready.len() as u64, started.elapsed());
        a.recorder.flush();
    }
}

/// Send the answers `ready` (indexes into `outs`) to `dests`, retrying the remainder when the
/// kernel takes only part of the batch.
fn send_all<S: Peer>(
    fd: std::os::fd::RawFd,
    tx: &mut MultiHeaders<S>,
    outs: &[Vec<u8>],
    ready: &[usize],
    dests: &[Option<S>],
) {
    let mut from = 0usize;
    let mut attempts = 0;
    while from < ready.len() && attempts < 4 {
        attempts += 1;
        let iovs: Vec<[IoSlice<'_>; 1]> = ready[from..]
            .iter()
            .map(|&i| [IoSlice::new(&outs[i])])
            .collect();
        let none: [ControlMessage<'_>; 0] = [];
        match sendmmsg(fd, tx, iovs.iter(), &dests[from..], none, MsgFlags::empty()) {
            Ok(res) => {
                let sent = res.count();
                if sent == 0 {
                    // Skip the message the kernel refused (e.g. unreachable address).
                    from += 1;
                } else {
                    from += sent;
                }
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp send error");
                // Skip the first message (the one that failed) and go on with the rest.
                from += 1;
            }
        }
    }
}
