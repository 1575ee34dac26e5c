//! The local fleet's demo tenants, as the README tour shows them: `www` answers with CORS
//! and `X-Served-By`; `secure` requires URLs signed with the fleet's `demo` key (made with
//! `edge sign-url`); `img` refuses clients the edges' country map places in `KP` and limits
//! each client to 20 requests/s with burst 40.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use cdn_tests::fleet::spec::{IMG_HOST, SECURE_SERVICE, SIGNING_KEY_NAME};
use cdn_tests::fleet::{Fleet, SERVICE};
use cdn_tests::harness::binary;
use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
use cdn_tests::harness::dns::{self, DnsQuery};
use cdn_tests::harness::http;

/// A GET from source address `src` on loopback; the status code.
fn status_from(src: IpAddr, to: SocketAddr, host: &str, path: &str) -> anyhow::Result<u16> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(src, 0).into())?;
    s.connect(&to.into())?;
    let mut c: std::net::TcpStream = s.into();
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line in {head:?}"))
}

#[test]
fn demo_tenants_cors_signed_urls_geo_and_rate_limit() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let edge = fleet.edge("us-east").http_addr();

        // www: CORS for any origin and the serving edge's id.
        let r = http::get(edge, "/obj/1k/cors").host(SERVICE).send()?;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("x-served-by"), Some("use1"));

        // secure: a service in the zone, and signed URLs only.
        let m = DnsQuery::new(SECURE_SERVICE, RecordType::A).udp(fleet.router_dns())?;
        assert_eq!(dns::a_records(&m), vec![fleet.edge("us-east").ip()]);
        let unsigned = http::get(edge, "/obj/1k/s").host(SECURE_SERVICE).send()?;
        assert_eq!(unsigned.status, 403);
        let out = std::process::Command::new(binary("edge")?)
            .args(["sign-url", "--key-name", SIGNING_KEY_NAME, "--key-file"])
            .arg(fleet.signing_key_path())
            .args(["--ttl", "5m"])
            .arg(format!("http://{SECURE_SERVICE}/obj/1k/s"))
            .output()?;
        assert!(out.status.success(), "{out:?}");
        let url = String::from_utf8(out.stdout)?;
        let pq = url
            .trim()
            .trim_start_matches(&format!("http://{SECURE_SERVICE}"));
        let signed = http::get(edge, pq).host(SECURE_SERVICE).send()?;
        assert_eq!(signed.status, 200, "{pq}");
        assert_eq!(fleet.origin_stats().paths.get("/obj/1k/s"), Some(&1));
        let tampered = pq.replace("/obj/1k/s", "/obj/2k/s");
        assert_eq!(
            http::get(edge, &tampered)
                .host(SECURE_SERVICE)
                .send()?
                .status,
            403
        );

        // img: KP is refused (127.0.99.0/24 in the edges' country map), others are not.
        let kp: IpAddr = "127.0.99.1".parse()?;
        let other: IpAddr = "127.0.0.1".parse()?;
        assert_eq!(status_from(kp, edge, IMG_HOST, "/obj/1k/i")?, 403);
        assert_eq!(status_from(other, edge, IMG_HOST, "/obj/1k/i")?, 200);

        // img: 20/s with burst 40 per client — a quick run of requests hits 429, and
        // another client is unaffected.
        let src: IpAddr = "127.0.0.7".parse()?;
        let mut limited = false;
        for _ in 0..200 {
            if status_from(src, edge, IMG_HOST, "/obj/1k/i")? == 429 {
                limited = true;
                break;
            }
        }
        assert!(limited, "429 after the burst");
        assert_eq!(
            status_from("127.0.0.8".parse()?, edge, IMG_HOST, "/obj/1k/i")?,
            200
        );
        Ok(())
    });
}
