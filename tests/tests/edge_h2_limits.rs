//! HTTP/2 limits of the real `edge` binary (issue 13 point 9): the HTTPS listener advertises
//! `http.h2_max_concurrent_streams` as SETTINGS_MAX_CONCURRENT_STREAMS and
//! `http.max_header_size` as SETTINGS_MAX_HEADER_LIST_SIZE, and a header list over it is not
//! served (vendored actix-http patch; see vendor/actix-http/src/h2/mod.rs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cdn_tests::harness::certs::DemoCa;
use cdn_tests::harness::{binary, Process};
use cdn_tests::origin::OriginHandle;

fn start(dir: &std::path::Path, origin: SocketAddr) -> (Process, SocketAddr) {
    let ca = DemoCa::new("h2 test CA").unwrap();
    let (cert, key) = ca.leaf(&["h2.test"]).unwrap().write(dir, "h2").unwrap();
    let cfg = format!(
        r#"
[edge]
id = "h2e"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 1
max_header_size = "8 KiB"
h2_max_concurrent_streams = 7
[tls]
listen = ["127.0.0.1:0"]
cert = "{}"
key = "{}"
[admin]
listen = "127.0.0.1:0"
[cache]
memory = "16 MiB"
[[hosts]]
name = "h2.test"
origin = "http://{origin}"
"#,
        cert.display(),
        key.display()
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, cfg).unwrap();
    let args = ["--config".to_string(), path.display().to_string()];
    let mut p = Process::spawn("edge", &binary("edge").unwrap(), &args, &[]).unwrap();
    p.wait_ready(Duration::from_secs(30)).unwrap();
    let https = p.addr("http", "https").unwrap();
    (p, https)
}

async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    h2::client::Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(cdn_shared::tls::AcceptAnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("h2.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2::client::handshake(tls).await.unwrap()
}

async fn get(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
    extra: Option<(&str, String)>,
) -> Result<u16, h2::Error> {
    let mut b = http::Request::builder()
        .uri("https://h2.test/obj/1k/h2")
        .header("host", "h2.test");
    if let Some((n, v)) = extra {
        b = b.header(n, v);
    }
    let (resp, _) = send
        .clone()
        .ready()
        .await?
        .send_request(b.body(()).unwrap(), true)?;
    Ok(resp.await?.status().as_u16())
}

#[test]
fn h2_settings_cap_streams_and_header_lists() {
    let dir = tempfile::tempdir().unwrap();
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (_edge, https) = start(dir.path(), origin.addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut send, mut conn) = h2_connect(https).await;
        // Drive the connection until the server's SETTINGS have arrived (the first request
        // needs them), then read the advertised stream cap.
        let first = tokio::select! {
            r = get(&mut send, None) => r,
            _ = &mut conn => panic!("connection ended"),
        };
        assert_eq!(first.unwrap(), 200);
        assert_eq!(conn.max_concurrent_send_streams(), 7);
        // A header list over 8 KiB is refused (stream reset or 431), never served.
        let big = "x".repeat(16 * 1024);
        let r = tokio::select! {
            r = get(&mut send, Some(("x-big", big))) => r,
            _ = &mut conn => panic!("connection ended"),
        };
        assert!(
            !matches!(r, Ok(200)),
            "an oversized header list was served: {r:?}"
        );
    });
}

/// One whole response (head and body) on `send`.
async fn get_whole(send: &mut h2::client::SendRequest<bytes::Bytes>) -> usize {
    let req = http::Request::builder()
        .uri("https://h2.test/obj/1k/nagle")
        .header("host", "h2.test")
        .body(())
        .unwrap();
    let (resp, _) = send
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(req, true)
        .unwrap();
    let mut body = resp.await.unwrap().into_body();
    let mut n = 0;
    while let Some(d) = body.data().await {
        let d = d.unwrap();
        n += d.len();
        let _ = body.flow_control().release_capacity(d.len());
    }
    n
}

/// An HTTP/2 response is several small writes (HEADERS, then DATA, each its own TLS record).
/// With Nagle's algorithm on the client connection the kernel held the DATA until the client's
/// delayed ACK, at least 40 ms on Linux, for every request: HTTP/2 served ~3k requests/s where
/// HTTP/1.1 served 100k+. The edge sets TCP_NODELAY; requests one after another on one
/// connection now answer well under that floor. (Not a speed target: every request took
/// 42–48 ms before, whatever the machine's load; the fastest of 20 tells the two apart.)
#[test]
fn h2_responses_are_not_held_for_the_delayed_ack() {
    let dir = tempfile::tempdir().unwrap();
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (_edge, https) = start(dir.path(), origin.addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut send, conn) = h2_connect(https).await;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        assert_eq!(get_whole(&mut send).await, 1024); // fills the cache
        let mut fastest = Duration::MAX;
        for _ in 0..20 {
            let t = std::time::Instant::now();
            assert_eq!(get_whole(&mut send).await, 1024);
            fastest = fastest.min(t.elapsed());
        }
        assert!(
            fastest < Duration::from_millis(30),
            "every HTTP/2 response took ≥ {fastest:?}: held by Nagle until the delayed ACK?"
        );
    });
}
