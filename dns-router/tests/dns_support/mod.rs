//! Test support: start `run()` on 127.0.0.1:0 in its own runtime thread, and talk DNS to it
//! over real UDP and TCP sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

/// The zone every test uses (mirrors the benchmark scenario).
pub const BASE: &str = r#"
[dns]
listen = ["127.0.0.1:0"]
udp_threads = 2
tcp_idle_timeout = "400ms"
[admin]
listen = "127.0.0.1:0"
[health]
probe_interval = "50ms"
probe_timeout = "100ms"
probe_jitter = "1ms"
rise = 1
fall = 1
[[regions]]
name = "us-east"
lat = 39.0
lon = -77.5
[[regions]]
name = "eu-west"
lat = 53.3
lon = -6.3
[[regions]]
name = "ap-northeast"
lat = 35.7
lon = 139.7
[geo]
default_region = "us-east"
networks = [
  { cidr = "198.51.100.0/24", region = "eu-west" },
  { cidr = "203.0.113.0/24", region = "ap-northeast" },
  { cidr = "2001:db8:aa::/48", region = "ap-northeast" },
]
[[zones]]
name = "cdn.example.test"
ns = ["ns1.cdn.example.test", "ns2.cdn.example.test"]
soa = { serial = 7, minimum = 60, ttl = 3600 }
[[zones.records]]
name = "ns1"
type = "A"
data = ["192.0.2.53"]
[[zones.records]]
name = "ns2"
type = "A"
data = ["192.0.2.54"]
[[zones.records]]
name = "static"
type = "A"
ttl = 30
data = ["192.0.2.99"]
[[zones.records]]
name = "alias"
type = "CNAME"
data = ["static"]
[[zones.records]]
name = "@"
type = "MX"
data = ["10 mail.example.net."]
[[zones.records]]
name = "sub"
type = "NS"
data = ["ns.sub"]
[[zones.records]]
name = "ns.sub"
type = "A"
data = ["192.0.2.77"]
[[zones.records]]
name = "a.b"
type = "TXT"
data = ["deep"]
[[zones.records]]
name = "big"
type = "TXT"
data = [BIGTXT]
"#;

/// Edges and services; `{US}`, `{EU}`, `{AP}` are probe URLs.
pub const FLEET: &str = r#"
[[edges]]
id = "use1"
region = "us-east"
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::10"]
probe_url = "{US}"
[[edges]]
id = "euw1"
region = "eu-west"
ipv4 = ["192.0.2.20"]
ipv6 = ["2001:db8::20"]
probe_url = "{EU}"
[[edges]]
id = "apne1"
region = "ap-northeast"
ipv4 = ["192.0.2.30"]
probe_url = "{AP}"
[[services]]
name = "www.cdn.example.test"
[[services]]
name = "*.img.cdn.example.test"
ttl = 20
[[services]]
name = "noecs.cdn.example.test"
ecs = "ignore"
[[services]]
name = "two.cdn.example.test"
answers = 2
[[services]]
name = "strict.cdn.example.test"
all_down = "none"
"#;

/// The base config with ten 120-byte TXT strings at `big` and the fleet with the given
/// probe URLs.
pub fn config_text(us: &str, eu: &str, ap: &str) -> String {
    let big: Vec<String> = (0..10)
        .map(|i| format!("\"{i:03}-{}\"", "a".repeat(116)))
        .collect();
    let fleet = FLEET
        .replace("{US}", us)
        .replace("{EU}", eu)
        .replace("{AP}", ap);
    format!("{}{}", BASE.replace("BIGTXT", &big.join(", ")), fleet)
}

/// A listener that accepts and answers every request with `200 OK` (a healthy edge).
pub fn healthy_edge() -> (String, JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nserving",
                );
            });
        }
    });
    (format!("http://{addr}/healthz"), h)
}

/// A URL nothing listens on (a dead edge).
pub fn dead_edge() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/healthz")
}

/// A running router.
pub struct Server {
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Start `run()` with the config text (relative paths against `dir`).
    pub fn start_in(text: &str, dir: &Path) -> Server {
        let config: RouterConfig =
            cdn_shared::config::load_str(text).expect("test config is valid");
        let sockets = cdn_dns_router::bind(&config).expect("bind");
        let dns = sockets.dns[0].addr();
        let admin = sockets.admin.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let _ = dir;
            rt.block_on(cdn_dns_router::run(config, None, sockets, s))
                .expect("run");
        });
        let server = Server {
            dns,
            admin,
            shutdown,
            thread: Some(thread),
        };
        // Ready when the apex SOA answers.
        let deadline = Instant::now() + cdn_tests::harness::scaled(Duration::from_secs(10));
        loop {
            let q = query("cdn.example.test", RecordType::SOA);
            if try_udp(dns, &q.to_vec().unwrap(), Duration::from_millis(200)).is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "router did not answer within 10 s"
            );
        }
        server
    }

    /// Start with the default fleet, every edge healthy-or-unknown (probe URLs not listening
    /// would turn them Down, so healthy listeners are started).
    pub fn start(text: &str) -> Server {
        Server::start_in(text, Path::new("."))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A query message (RD=0, random id).
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(4711);
    N.fetch_add(7919, Ordering::Relaxed)
}

/// Add an OPT (payload 1232) with an optional ECS subnet.
pub fn with_edns(mut m: Message, ecs: Option<&str>) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some(s) = ecs {
        let net = ipnet::IpNet::from_str(s).unwrap();
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            net.addr(),
            net.prefix_len(),
            0,
        )));
    }
    m.set_edns(e);
    m
}

/// Send over UDP and wait for the answer with the same id.
pub fn try_udp(addr: SocketAddr, packet: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let local = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(packet, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match s.recv_from(&mut buf) {
            Ok((n, _)) if n >= 2 && packet.len() >= 2 && buf[..2] == packet[..2] => {
                return Some(buf[..n].to_vec())
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// UDP exchange that must get an answer.
pub fn udp_raw(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    try_udp(addr, packet, Duration::from_secs(3)).expect("no UDP answer")
}

/// UDP exchange of messages.
pub fn udp(addr: SocketAddr, m: &Message) -> Message {
    Message::from_vec(&udp_raw(addr, &m.to_vec().unwrap())).expect("response decodes")
}

/// One TCP exchange on a fresh connection.
pub fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write_frame(&mut s, &m.to_vec().unwrap());
    Message::from_vec(&read_frame(&mut s).expect("tcp answer")).unwrap()
}

/// Write one length-prefixed message.
pub fn write_frame(s: &mut TcpStream, b: &[u8]) {
    let mut f = (b.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(b);
    s.write_all(&f).unwrap();
}

/// Read one length-prefixed message (None on EOF/timeout).
pub fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut l = [0u8; 2];
    s.read_exact(&mut l).ok()?;
    let mut b = vec![0u8; u16::from_be_bytes(l) as usize];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

/// The A/AAAA addresses in a response's answer section.
pub fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
            hickory_proto::rr::RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The ECS option of a response: (source, scope, address).
pub fn ecs_of(m: &Message) -> Option<(u8, u8, IpAddr)> {
    let e = m.edns.as_ref()?;
    match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix(), s.addr())),
        _ => None,
    }
}

/// A TCP exchange of raw bytes on a fresh connection.
pub fn tcp_bytes(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write_frame(&mut s, packet);
    read_frame(&mut s).expect("tcp answer")
}
