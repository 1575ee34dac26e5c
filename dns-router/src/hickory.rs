//! The request path as a hickory-server [`RequestHandler`], for DNS over TCP ([`crate::tcp`]).
//!
//! [`RouterHandler::handle_request`] takes the raw query (`Request::as_slice`), answers it
//! with [`crate::handler::respond`] (the function the UDP fast path calls, with `Transport::Tcp`:
//! 65535-byte limit, so nothing is truncated), counts it and writes the query-log line exactly
//! as UDP does, then hands the response to hickory's [`ResponseHandler`] as a
//! `MessageResponse`: [`decode_response`] splits our wire response into the question section
//! (as written: the query's bytes, so the letter case — 0x20 — is kept) and a decoded
//! `Message` (header with AA and the full RCODE including the extended part, the three
//! sections, the OPT record with our payload size, DO and the Client Subnet echo with its
//! scope); hickory encodes it again. What changes on the wire: hickory does not compress
//! owner names against the question, so owners are written out in full (same names, a few
//! bytes longer). A response hickory cannot decode (never seen; the fuzz target checks that
//! every response decodes) is answered SERVFAIL and counted so.
//!
//! State per connection (the handler is built per connection): the pool states and interned
//! answers ([`ThreadCache::small`]: at most [`crate::handler::TCP_MAX_ANSWERS`] answers, a few KiB
//! with `dns.tcp_max_connections` connections open) and the metric handles, as each UDP
//! thread has its own.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_proto::op::{Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use crate::answer::Rcode;
use crate::handler::{respond, Context, Outcome, ThreadCache, Transport};
use crate::live::Router;
use crate::querylog::{Entry, QueryLog, Recorder};

/// Per-connection mutable state.
#[derive(Debug)]
struct ConnState {
    cache: ThreadCache,
    recorder: Recorder,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            cache: ThreadCache::small(),
            recorder: Recorder::default(),
        }
    }
}

/// The router's request path for hickory-server, one per TCP connection.
#[derive(Debug)]
pub struct RouterHandler {
    router: Arc<Router>,
    log: Option<QueryLog>,
    state: Mutex<ConnState>,
}

/// Our wire response in the pieces `MessageResponseBuilder` takes.
#[derive(Debug)]
pub struct ResponseParts {
    /// The question section exactly as written (the query's bytes).
    pub queries: Queries,
    /// The whole response, decoded (the OPT record is in `edns`, the extended RCODE merged
    /// into `metadata.response_code`).
    pub message: Message,
}

/// Split a wire response into the question section (kept as bytes) and the decoded message.
pub fn decode_response(wire: &[u8]) -> Result<ResponseParts, DecodeError> {
    let message = Message::from_vec(wire)?;
    let mut d = BinDecoder::new(wire);
    let header = Header::read(&mut d)?;
    let queries = Queries::read(&mut d, usize::from(header.counts.queries))?;
    Ok(ResponseParts { queries, message })
}

impl RouterHandler {
    /// A handler answering from `router`, logging to `log`.
    pub fn new(router: Arc<Router>, log: Option<QueryLog>) -> Self {
        Self {
            router,
            log,
            state: Mutex::new(ConnState::default()),
        }
    }

    /// Answer `query` into `out` and decode the result for hickory. Counts the query and logs
    /// it (as what is actually sent: SERVFAIL when the response does not decode). `None`:
    /// nothing to send (no readable header, or not a query).
    fn answer(
        &self,
        query: &[u8],
        peer: IpAddr,
        started: Instant,
    ) -> Option<Result<ResponseParts, Metadata>> {
        let mut out = Vec::with_capacity(512);
        let snap = self.router.snapshot();
        let view = self.router.health().view();
        let now_ms = cdn_shared::unix_ms();
        let ctx = Context {
            snap: &snap,
            view: &view,
            now_ms,
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut outcome = respond(ctx, &mut state.cache, query, peer, Transport::Tcp, &mut out)?;
        let parts = decode_response(&out).map_err(|e| {
            tracing::warn!(error = %e, "tcp: own response does not decode; answering SERVFAIL");
            // `respond` answered, so the query has a header.
            let mut d = BinDecoder::new(query);
            let mut meta = match Header::read(&mut d) {
                Ok(h) => Metadata::response_from_request(&h.metadata),
                Err(_) => Metadata::new(0, MessageType::Response, OpCode::Query),
            };
            meta.response_code = ResponseCode::ServFail;
            outcome.rcode = Rcode::ServFail;
            outcome.service = None;
            outcome.answer = None;
            outcome.truncated = false;
            meta
        });
        self.record(&mut state, &snap, &outcome, query, peer, now_ms, started);
        Some(parts)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        state: &mut ConnState,
        snap: &crate::snapshot::Snapshot,
        o: &Outcome,
        query: &[u8],
        peer: IpAddr,
        now_ms: u64,
        started: Instant,
    ) {
        state.recorder.record(snap, o, started.elapsed());
        state.recorder.flush();
        if let Some(l) = &self.log {
            l.log(Entry::new(snap, o, query, peer, Transport::Tcp, now_ms));
        }
    }
}

/// What `handle_request` returns when nothing was sent (no readable header, not a query, or
/// the connection failed): the request's header as a response with no records.
fn nothing_sent(request: &Request) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata: Metadata::response_from_request(&request.metadata),
        counts: Default::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for RouterHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let Some(parts) = self.answer(request.as_slice(), request.src().ip(), started) else {
            return nothing_sent(request);
        };
        match send(&parts, &request.queries, response_handle).await {
            Some(info) => info,
            None => nothing_sent(request),
        }
    }
}

impl RouterHandler {
    /// Answer a query hickory could not decode (`tcp.rs`) from its bytes with
    /// [`respond`], as UDP does: FORMERR with the question when it reads and an OPT when the
    /// query had one (RFC 6891 §7), or the answer when only hickory refuses the packet.
    /// Nothing is sent when `respond` sends nothing.
    pub async fn handle_raw<R: ResponseHandler>(
        &self,
        bytes: &[u8],
        peer: IpAddr,
        started: Instant,
        response: R,
    ) {
        let Some(parts) = self.answer(bytes, peer, started) else {
            return;
        };
        let mut d = BinDecoder::new(&[]);
        let Ok(no_question) = Queries::read(&mut d, 0) else {
            return;
        };
        send(&parts, &no_question, response).await;
    }
}

/// Hand our answer (or the SERVFAIL that replaces an undecodable one, with `queries`) to
/// hickory; `None` when it was not sent.
async fn send<R: ResponseHandler>(
    parts: &Result<ResponseParts, Metadata>,
    queries: &Queries,
    mut response_handle: R,
) -> Option<ResponseInfo> {
    let sent = match parts {
        Ok(ResponseParts { queries, message }) => {
            let mut builder = MessageResponseBuilder::new(queries, None);
            if let Some(edns) = &message.edns {
                builder.edns(edns);
            }
            let response = builder.build(
                message.metadata,
                &message.answers,
                &message.authorities,
                std::iter::empty::<&Record>(),
                &message.additionals,
            );
            response_handle.send_response(response).await
        }
        Err(meta) => {
            let response =
                MessageResponseBuilder::new(queries, None).error_msg(meta, meta.response_code);
            response_handle.send_response(response).await
        }
    };
    match sent {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::debug!(error = %e, "tcp: response not sent");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{OptReply, Response, Section, OWNER_QNAME};
    use crate::wire::Ecs;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::serialize::binary::BinEncoder;

    #[test]
    fn a_connection_cache_is_small() {
        let c = ConnState::default();
        assert_eq!(c.cache.max_answers(), crate::handler::TCP_MAX_ANSWERS);
        assert!(c.cache.max_answers() <= 64);
    }

    /// Re-encode parts the way hickory's `ResponseHandle` does (minus the size limit).
    fn reencode(p: &ResponseParts) -> Vec<u8> {
        let mut builder = MessageResponseBuilder::new(&p.queries, None);
        if let Some(e) = &p.message.edns {
            builder.edns(e);
        }
        let r = builder.build(
            p.message.metadata,
            &p.message.answers,
            &p.message.authorities,
            std::iter::empty::<&Record>(),
            &p.message.additionals,
        );
        let mut buf = Vec::new();
        let mut enc = BinEncoder::new(&mut buf);
        r.destructive_emit(&mut enc).unwrap();
        buf
    }

    fn question(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut q = name.to_vec();
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn answer_with_case_aa_and_ecs_survives() {
        let q = question(b"\x03WwW\x03cDn\x04TeSt\x00", 1);
        let mut wire = Vec::new();
        let mut r = Response::start(&mut wire, 0x1234, 0x0100, &q, true, Rcode::NoError);
        r.record(Section::Answer, &OWNER_QNAME, 1, 30, &[192, 0, 2, 1]);
        let ecs = Ecs {
            family: 1,
            source_prefix: 24,
            addr: "198.51.100.0".parse().unwrap(),
        };
        r.finish(
            Some(OptReply {
                udp_size: 1232,
                dnssec_ok: true,
                ecs: Some((ecs, 20)),
                cookie: None,
            }),
            usize::MAX,
        );
        let parts = decode_response(&wire).unwrap();
        assert_eq!(parts.queries.as_bytes(), &q[..]);
        let out = reencode(&parts);
        // The question bytes (case included) are kept.
        assert_eq!(&out[12..12 + q.len()], &q[..]);
        let a = Message::from_vec(&wire).unwrap();
        let b = Message::from_vec(&out).unwrap();
        assert_eq!(a, b);
        assert!(b.metadata.authoritative);
        assert!(b.metadata.recursion_desired);
        assert!(!b.metadata.truncation);
        assert_eq!(b.answers[0].name.to_string(), "WwW.cDn.TeSt.");
        let e = b.edns.as_ref().unwrap();
        assert_eq!(e.max_payload(), 1232);
        assert!(e.flags().dnssec_ok);
        match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => {
                assert_eq!((s.source_prefix(), s.scope_prefix()), (24, 20));
                assert_eq!(s.addr(), "198.51.100.0".parse::<IpAddr>().unwrap());
            }
            other => panic!("no ECS: {other:?}"),
        }
    }

    #[test]
    fn badvers_extended_rcode_survives() {
        let q = question(b"\x01a\x04test\x00", 1);
        let mut wire = Vec::new();
        Response::start(&mut wire, 7, 0, &q, false, Rcode::BadVers).finish(
            Some(OptReply {
                udp_size: 1232,
                dnssec_ok: false,
                ecs: None,
                cookie: None,
            }),
            usize::MAX,
        );
        let out = reencode(&decode_response(&wire).unwrap());
        assert_eq!(out, wire, "identical bytes");
        let m = Message::from_vec(&out).unwrap();
        // 16 = BADVERS (hickory names it BADSIG).
        assert_eq!(u16::from(m.metadata.response_code), 16);
        assert_eq!(out[3] & 0x0f, 0, "low bits 0");
    }

    #[test]
    fn header_only_error_has_no_question() {
        let mut wire = Vec::new();
        crate::answer::header_only(&mut wire, &[0xab, 0xcd, 0x01, 0x00], Rcode::FormErr);
        let parts = decode_response(&wire).unwrap();
        assert!(parts.queries.is_empty());
        assert_eq!(reencode(&parts), wire);
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode_response(&[0; 5]).is_err());
        assert!(decode_response(&[0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0]).is_err());
    }
}
