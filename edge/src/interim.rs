//! Origin connections that never show an interim (1xx) response to awc.
//!
//! awc's HTTP/1.1 client reads exactly one response head per request and takes it as final: an
//! origin answering `103 Early Hints` (or `100`/`102`) before its `200` would have the 103
//! returned as the response, the 200 left in the connection's buffer, and the connection
//! pooled with those bytes in it. The fix belongs below awc, on the byte stream: [`Interim`]
//! wraps every origin connection and, after each request written on it, reads the next
//! response head itself, drops it when it is a 1xx other than `101 Switching Protocols`, and
//! passes the first non-1xx head and everything after it through untouched. The edge never
//! sends `Expect: 100-continue` (request bodies are buffered before they are sent,
//! `headers::origin_request_headers`), so no 1xx is ever awaited by awc. 103 Early Hints are
//! dropped rather than forwarded: actix-web's server has no way to send an interim response.
//!
//! For the filter to see plaintext, TLS to the origin is done here too ([`OriginConnector`]):
//! awc is given `http://` URLs and a connection that is already TLS when the origin is
//! `https://` (SNI = the origin URL's host, ALPN `http/1.1` as before).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest response head the filter buffers while looking for its end; a longer head is passed
/// to awc as it is (awc then refuses it as too large).
pub const MAX_HEAD: usize = 64 * 1024;

/// What a buffered response head turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadScan {
    /// Not complete yet (no empty line): read more.
    Incomplete,
    /// A complete interim response of this many bytes: drop it.
    Interim(usize),
    /// A final response (or something that is not an HTTP/1 status line): pass everything.
    Final,
}

/// Classify the start of `buf`, the bytes of a response head (pure; see the module docs).
pub fn scan_head(buf: &[u8]) -> HeadScan {
    // "HTTP/1.x NNN": a status line we can judge needs 12 bytes.
    if buf.len() < 12 {
        return if b"HTTP/1.".starts_with(&buf[..buf.len().min(7)]) {
            HeadScan::Incomplete
        } else {
            HeadScan::Final
        };
    }
    if !buf.starts_with(b"HTTP/1.") || buf[8] != b' ' {
        return HeadScan::Final;
    }
    let code = &buf[9..12];
    if code[0] != b'1' || !code.iter().all(u8::is_ascii_digit) || code == b"101" {
        return HeadScan::Final;
    }
    match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => HeadScan::Interim(p + 4),
        None if buf.len() > MAX_HEAD => HeadScan::Final,
        None => HeadScan::Incomplete,
    }
}

/// Where the filter is in the current exchange.
#[derive(Debug)]
enum State {
    /// Passing bytes through (a final head has been seen, or nothing was asked yet).
    Pass,
    /// A request was written: collecting the next response head in `buf`.
    Head,
    /// Handing out `buf[pos..]` (the start of a final response), then [`State::Pass`].
    Drain(usize),
}

/// A connection that drops interim responses (see the module docs).
#[derive(Debug)]
pub struct Interim<Io> {
    io: Io,
    state: State,
    buf: Vec<u8>,
}

impl<Io> Interim<Io> {
    /// Wrap a fresh connection.
    pub fn new(io: Io) -> Self {
        Interim {
            io,
            state: State::Pass,
            buf: Vec::new(),
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Interim<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Pass => return Pin::new(&mut this.io).poll_read(cx, out),
                State::Drain(pos) => {
                    let n = (this.buf.len() - pos).min(out.remaining());
                    out.put_slice(&this.buf[pos..pos + n]);
                    if pos + n >= this.buf.len() {
                        this.buf = Vec::new();
                        this.state = State::Pass;
                    } else {
                        this.state = State::Drain(pos + n);
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Head => {
                    match scan_head(&this.buf) {
                        HeadScan::Interim(n) => {
                            this.buf.drain(..n);
                            continue;
                        }
                        HeadScan::Final => {
                            this.state = State::Drain(0);
                            if this.buf.is_empty() {
                                this.state = State::Pass;
                            }
                            continue;
                        }
                        HeadScan::Incomplete => {}
                    }
                    let mut tmp = [0u8; 8192];
                    let mut rb = ReadBuf::new(&mut tmp);
                    match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                            // EOF inside a head: hand over what there is, then the EOF.
                            this.state = if this.buf.is_empty() {
                                State::Pass
                            } else {
                                State::Drain(0)
                            };
                            continue;
                        }
                        Poll::Ready(Ok(())) => this.buf.extend_from_slice(rb.filled()),
                    }
                }
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Interim<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        // A request is being written: the next bytes read start a response head. (awc does
        // not pipeline, so the previous response has been read to its end by now.)
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) && matches!(this.state, State::Pass) {
            this.state = State::Head;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin> ActixStream for Interim<Io> {
    // awc's client never asks; answer "ready" so nothing can wait on it.
    fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        Poll::Ready(Ok(Ready::READABLE))
    }
    fn poll_write_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        Poll::Ready(Ok(Ready::WRITABLE))
    }
}

/// A plain or TLS origin connection.
#[derive(Debug)]
pub enum OriginIo {
    /// `http://` origin.
    Plain(TcpStream),
    /// `https://` origin.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for OriginIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            OriginIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for OriginIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_write(cx, b),
            OriginIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_flush(cx),
            OriginIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            OriginIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// awc's connect step for one origin: TCP (awc's resolver and connector), TLS when the origin
/// is `https://`, then [`Interim`].
#[derive(Clone)]
pub struct OriginConnector {
    tcp: ConnectorService,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl OriginConnector {
    /// Plain TCP, or TLS to `sni` with `cfg`.
    pub fn new(tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>) -> Self {
        OriginConnector {
            tcp: ConnectorService::default(),
            tls: tls.map(|(cfg, sni)| (tokio_rustls::TlsConnector::from(cfg), sni)),
        }
    }
}

type ConnectResult = Result<Connection<Uri, Interim<OriginIo>>, ConnectError>;

impl actix_service::Service<ConnectInfo<Uri>> for OriginConnector {
    type Response = Connection<Uri, Interim<OriginIo>>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = ConnectResult>>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let fut = self.tcp.call(req);
        let tls = self.tls.clone();
        Box::pin(async move {
            let conn: Connection<Uri, TcpStream> = fut.await?;
            let (tcp, conn) = conn.replace_io(());
            let io = match tls {
                None => OriginIo::Plain(tcp),
                Some((c, sni)) => OriginIo::Tls(Box::new(
                    c.connect(sni, tcp).await.map_err(ConnectError::Io)?,
                )),
            };
            Ok(conn.replace_io(Interim::new(io)).1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn scans_heads() {
        assert_eq!(scan_head(b""), HeadScan::Incomplete);
        assert_eq!(scan_head(b"HTT"), HeadScan::Incomplete);
        assert_eq!(scan_head(b"HTTP/1.1 10"), HeadScan::Incomplete);
        assert_eq!(scan_head(b"HTTP/1.1 103 Early"), HeadScan::Incomplete);
        assert_eq!(
            scan_head(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200"),
            HeadScan::Interim(40)
        );
        assert_eq!(scan_head(b"HTTP/1.1 100 \r\n\r\n"), HeadScan::Interim(17));
        assert_eq!(scan_head(b"HTTP/1.1 101 Switching"), HeadScan::Final);
        assert_eq!(scan_head(b"HTTP/1.1 200 OK\r\n"), HeadScan::Final);
        assert_eq!(scan_head(b"HTTP/1.0 204 \r\n\r\n"), HeadScan::Final);
        assert_eq!(scan_head(b"garbage"), HeadScan::Final);
        assert_eq!(scan_head(b"HTTP/1.1 1x3 what\r\n\r\n"), HeadScan::Final);
        let mut long = b"HTTP/1.1 103 x\r\n".to_vec();
        long.resize(MAX_HEAD + 1, b'a');
        assert_eq!(scan_head(&long), HeadScan::Final);
    }

    proptest! {
        #[test]
        fn scan_never_panics_and_interim_is_within(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let HeadScan::Interim(n) = scan_head(&buf) {
                prop_assert!(n <= buf.len());
                prop_assert!(buf[..n].ends_with(b"\r\n\r\n"));
            }
        }
    }

    /// Two exchanges on one connection, interim responses in pieces of every size.
    #[tokio::test]
    async fn drops_interim_heads_across_reads() {
        for piece in [1usize, 3, 7, 64, 4096] {
            let (client, mut server) = tokio::io::duplex(64);
            let mut c = Interim::new(client);
            let wire: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
            let srv = tokio::spawn(async move {
                let mut req = [0u8; 4];
                for _ in 0..2 {
                    server.read_exact(&mut req).await.unwrap();
                    for p in wire.chunks(piece) {
                        server.write_all(p).await.unwrap();
                        server.flush().await.unwrap();
                    }
                }
            });
            for _ in 0..2 {
                c.write_all(b"GET ").await.unwrap();
                let want = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
                let mut got = vec![0u8; want.len()];
                c.read_exact(&mut got).await.unwrap();
                assert_eq!(&got[..], &want[..], "piece {piece}");
            }
            srv.await.unwrap();
        }
    }
}
