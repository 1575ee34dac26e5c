//! A TLS client for tests (rustls, blocking): connect with a chosen SNI, ALPN list and TLS
//! version, see which certificate the server presented, and send HTTP/1.1 requests on the
//! same (keep-alive) connection. The server certificate is not verified: tests compare
//! the presented leaf with the one they expect.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, StreamOwned};

use super::http::Reply;

/// One TLS connection.
pub struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").finish_non_exhaustive()
    }
}

/// What to offer in the handshake.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// SNI; `None` sends none (the connection is made to the IP address).
    pub sni: Option<&'a str>,
    /// ALPN protocols, e.g. `[b"h2", b"http/1.1"]`.
    pub alpn: &'a [&'a [u8]],
    /// Only TLS 1.2 (`Some(false)`), only 1.3 (`Some(true)`), or both (`None`).
    pub tls13: Option<bool>,
}

impl Default for Offer<'_> {
    fn default() -> Self {
        Offer {
            sni: None,
            alpn: &[b"http/1.1"],
            tls13: None,
        }
    }
}

impl TlsConn {
    /// Connect to `addr` and complete the handshake.
    pub fn connect(addr: SocketAddr, offer: Offer<'_>) -> anyhow::Result<TlsConn> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match offer.tls13 {
            Some(true) => &[&rustls::version::TLS13],
            Some(false) => &[&rustls::version::TLS12],
            None => rustls::ALL_VERSIONS,
        };
        let mut cfg = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(cdn_shared::tls::AcceptAnyCert(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = offer.alpn.iter().map(|p| p.to_vec()).collect();
        let name = match offer.sni {
            Some(n) => ServerName::try_from(n.to_string())?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let conn = ClientConnection::new(Arc::new(cfg), name)?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .with_context(|| format!("TLS handshake with {addr}"))?;
        }
        Ok(TlsConn { stream })
    }

    /// The leaf certificate the server presented (DER).
    pub fn leaf(&self) -> Option<&[u8]> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref())
    }

    /// The protocol chosen by ALPN.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.stream.conn.alpn_protocol()
    }

    /// The TLS version negotiated.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    /// Send `GET path` with `Host: host` over HTTP/1.1 (keep-alive) and read the response
    /// (a `Content-Length` body, at most 16 MiB).
    pub fn get(&mut self, host: &str, path: &str) -> anyhow::Result<Reply> {
        write!(
            self.stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cdn-tests\r\n\r\n"
        )?;
        self.stream.flush()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 64 * 1024 {
                bail!("response head over 64 KiB");
            }
            self.stream
                .read_exact(&mut byte)
                .context("reading the response head")?;
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if len > 16 << 20 {
            bail!("body of {len} bytes is over the 16 MiB cap");
        }
        let mut body = vec![0; len];
        self.stream
            .read_exact(&mut body)
            .context("reading the body")?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Speak HTTP/2 (after ALPN `h2`): send the client preface and an empty SETTINGS frame,
    /// and return the type of the first frame the server sends (4 = SETTINGS).
    pub fn h2_first_frame_type(&mut self) -> anyhow::Result<u8> {
        self.stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
        self.stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])?;
        self.stream.flush()?;
        let mut frame = [0u8; 9];
        self.stream
            .read_exact(&mut frame)
            .context("reading the server's first HTTP/2 frame")?;
        Ok(frame[3])
    }
}

/// One raw HTTP/1.1 request (`request`, sent as is; say `Connection: close`) over TLS to
/// `addr` for server name `localhost`, trusting only the PEM certificates in `ca` (a CA or a
/// self-signed server certificate): (status, whole response), or (0, the error) when the
/// handshake fails — the certificate is verified, unlike [`TlsConn`].
pub fn request_verified(addr: SocketAddr, ca: &std::path::Path, request: &str) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap_or_default();
    for c in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
        let _ = roots.add(c);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
            Err(e) => return (0, e.to_string()),
        };
    let name = ServerName::try_from("localhost").expect("a valid name");
    let conn = match ClientConnection::new(Arc::new(cfg), name) {
        Ok(c) => c,
        Err(e) => return (0, e.to_string()),
    };
    let sock = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return (0, e.to_string()),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let mut tls = StreamOwned::new(conn, sock);
    if let Err(e) = tls.write_all(request.as_bytes()) {
        return (0, e.to_string()); // the handshake failed
    }
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}
