//! Fuzz the whole DNS request path (`handler::respond`: decode, lookup, route, answer) with
//! arbitrary packets over both transports. Invariants: no panic; when we answer, the response
//! echoes the id, has QR=1, fits the transport's limit, and decodes as a DNS message.
#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use cdn_dns_router::handler::{respond, Context, ThreadCache, Transport};
use cdn_dns_router::health::HealthView;
use cdn_dns_router::snapshot::{build_snapshot, Snapshot};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[[regions]]
name = "us"
lat = 39.0
lon = -77.5
[[regions]]
name = "eu"
lat = 53.3
lon = -6.3
[geo]
networks = [{ cidr = "198.51.100.0/24", region = "eu" }, { cidr = "2001:db8::/32", region = "eu" }]
[[edges]]
id = "us1"
region = "us"
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::10"]
[[edges]]
id = "eu1"
region = "eu"
ipv4 = ["192.0.2.20"]
[[zones]]
name = "cdn.example.test"
ns = ["ns1.cdn.example.test", "ns.other.test"]
records = [
  { name = "ns1", type = "A", data = ["192.0.2.53"] },
  { name = "static", type = "A", data = ["192.0.2.99"] },
  { name = "alias", type = "CNAME", data = ["static"] },
  { name = "loop1", type = "CNAME", data = ["loop2"] },
  { name = "loop2", type = "CNAME", data = ["loop1"] },
  { name = "sub", type = "NS", data = ["ns.sub"] },
  { name = "ns.sub", type = "A", data = ["192.0.2.7"] },
  { name = "big", type = "TXT", data = ["a", "b", "c"] },
  { name = "@", type = "MX", data = ["10 mail"] },
]
[[services]]
name = "www.cdn.example.test"
answers = 2
[[services]]
name = "*.img.cdn.example.test"
ecs = "ignore"
"#;

fn snapshot() -> &'static (Snapshot, HealthView) {
    static S: OnceLock<(Snapshot, HealthView)> = OnceLock::new();
    S.get_or_init(|| {
        let config = cdn_shared::config::load_str(CONFIG).expect("fuzz config");
        let snap = build_snapshot(&config, Path::new("."), 1).expect("snapshot");
        // Service answers come from the precompiled geo map, as in the running router.
        assert!(snap.precompile(), "geo map");
        (snap, HealthView::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let (snap, view) = snapshot();
    let ctx = Context {
        snap,
        view,
        now_ms: 1_700_000_000_000,
    };
    let mut cache = ThreadCache::new();
    let mut out = Vec::new();
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    for transport in [Transport::Udp, Transport::Tcp] {
        if respond(ctx, &mut cache, data, client, transport, &mut out).is_some() {
            assert!(out.len() >= 12);
            assert_eq!(out[..2], data[..2], "id echoed");
            assert_eq!(out[2] & 0x80, 0x80, "QR set");
            let limit = if transport == Transport::Udp {
                1232
            } else {
                65535
            };
            assert!(out.len() <= limit, "{} > {limit}", out.len());
            hickory_proto::op::Message::from_vec(&out).expect("our response decodes");
        }
    }
});
