//! What a fleet is made of, before anything runs: regions with their edge, the routers, the
//! demo zone and geo map, timings. Defaults are the README's local fleet; tests change only
//! what they need.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cdn_shared::report::Capacity;

/// The demo zone.
pub const ZONE: &str = "cdn.example.test";
/// The CDN hostname routed over the edges (and served by them).
pub const SERVICE: &str = "www.cdn.example.test";
/// A wildcard service over the same edges.
pub const IMG_SERVICE: &str = "*.img.cdn.example.test";
/// The edges' image host (answered by [`IMG_SERVICE`] in DNS): a per-client rate limit of 20
/// requests/s with burst 40, and clients located in `KP` refused.
pub const IMG_HOST: &str = "photos.img.cdn.example.test";
/// The service and edge host that requires signed URLs (key name [`SIGNING_KEY_NAME`], key in
/// `<workdir>/url-signing-key`).
pub const SECURE_SERVICE: &str = "secure.cdn.example.test";
/// The key name of the demo URL-signing key.
pub const SIGNING_KEY_NAME: &str = "demo";
/// Networks the demo places in a country for the edges' geo rules (the edges' `[geo]`
/// network map): loopback addresses a curl can use as its source (`--interface`).
pub const DEMO_COUNTRIES: &[(&str, &str)] = &[("127.0.99.0/24", "KP")];
/// The static A record `static.cdn.example.test`.
pub const STATIC_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
/// The TXT RRset larger than 1232 bytes (truncated over UDP, whole over TCP).
pub const BIG_TXT: &str = "big.cdn.example.test";
/// Number of records in the `big` TXT RRset, and the length of each.
pub const BIG_TXT_RECORDS: usize = 8;
/// Length of each `big` TXT string.
pub const BIG_TXT_LEN: usize = 200;
/// The fleet's operator token (router `operate` role, edge purge; edges report with
/// credentials derived from it, `fleet::config::report_token`).
pub const DEMO_TOKEN: &str = "fleet-demo-token";

/// The `i`th string of the `big` TXT RRset.
pub fn big_txt_string(i: usize) -> String {
    let head = format!("big-{i}-");
    let fill: String = (0..BIG_TXT_LEN - head.len())
        .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
        .collect();
    head + &fill
}

/// One region and its single edge.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSpec {
    /// Region name (`us-east`).
    pub name: String,
    /// Latitude of the region.
    pub lat: f64,
    /// Longitude of the region.
    pub lon: f64,
    /// The edge's id (`use1`).
    pub edge_id: String,
    /// The loopback address the edge serves on (and the router answers).
    pub ip: Ipv4Addr,
    /// Client HTTP port; 0 = reserve a free one before the fleet starts.
    pub http_port: u16,
    /// Admin port; 0 = reserve a free one.
    pub admin_port: u16,
    /// Client HTTPS port; 0 = reserve a free one.
    pub https_port: u16,
    /// Capacity the edge announces in its reports.
    pub capacity: Capacity,
    /// Probe this URL instead of the edge's `/healthz`; `{origin}` is replaced by the demo
    /// origin's base URL (e.g. `{origin}/obj/1/probe` answers 503 while the origin's fail
    /// switch is on). Default none.
    pub probe_url: Option<String>,
}

impl RegionSpec {
    /// A region with its edge on `ip`, ports reserved at start.
    pub fn new(name: &str, lat: f64, lon: f64, edge_id: &str, ip: Ipv4Addr) -> Self {
        Self {
            name: name.into(),
            lat,
            lon,
            edge_id: edge_id.into(),
            ip,
            http_port: 0,
            admin_port: 0,
            https_port: 0,
            capacity: Capacity::default(),
            probe_url: None,
        }
    }
}

/// The README's three regions: us-east (39.0, −77.5) on 127.0.1.1, eu-west (53.3, −6.3) on
/// 127.0.2.1, ap-northeast (35.7, 139.7) on 127.0.3.1.
pub fn default_regions() -> Vec<RegionSpec> {
    vec![
        RegionSpec::new("us-east", 39.0, -77.5, "use1", Ipv4Addr::new(127, 0, 1, 1)),
        RegionSpec::new("eu-west", 53.3, -6.3, "euw1", Ipv4Addr::new(127, 0, 2, 1)),
        RegionSpec::new(
            "ap-northeast",
            35.7,
            139.7,
            "apne1",
            Ipv4Addr::new(127, 0, 3, 1),
        ),
    ]
}

/// Where a demo-map prefix is placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// In a named region.
    Region(&'static str),
    /// At coordinates (the router picks the nearest region by distance).
    Coords(f64, f64),
}

/// One prefix of the embedded demo geo map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoNetwork {
    /// The prefix.
    pub cidr: &'static str,
    /// Where it is.
    pub place: Place,
    /// Whose network it is (for the printed tour).
    pub what: &'static str,
}

/// The embedded demo geo map: a few real prefixes per region, and two placed by coordinates
/// only (the router picks the nearest region for them).
pub const DEMO_NETWORKS: &[DemoNetwork] = &[
    DemoNetwork {
        cidr: "8.8.8.0/24",
        place: Place::Region("us-east"),
        what: "Google Public DNS",
    },
    DemoNetwork {
        cidr: "4.2.2.0/24",
        place: Place::Region("us-east"),
        what: "Level 3 resolvers",
    },
    DemoNetwork {
        cidr: "208.67.222.0/24",
        place: Place::Region("us-east"),
        what: "OpenDNS",
    },
    DemoNetwork {
        cidr: "2001:4860::/32",
        place: Place::Region("us-east"),
        what: "Google IPv6",
    },
    DemoNetwork {
        cidr: "81.2.69.0/24",
        place: Place::Region("eu-west"),
        what: "London (the MaxMind test database's UK prefix)",
    },
    DemoNetwork {
        cidr: "193.0.0.0/21",
        place: Place::Region("eu-west"),
        what: "RIPE NCC, Amsterdam",
    },
    DemoNetwork {
        cidr: "2001:67c:2e8::/48",
        place: Place::Region("eu-west"),
        what: "RIPE NCC IPv6",
    },
    DemoNetwork {
        cidr: "1.0.16.0/24",
        place: Place::Region("ap-northeast"),
        what: "APNIC, Japan",
    },
    DemoNetwork {
        cidr: "202.12.27.0/24",
        place: Place::Region("ap-northeast"),
        what: "M-root, Tokyo (WIDE)",
    },
    DemoNetwork {
        cidr: "2001:dc3::/32",
        place: Place::Region("ap-northeast"),
        what: "M-root IPv6 (WIDE)",
    },
    DemoNetwork {
        cidr: "1.1.1.0/24",
        place: Place::Coords(-33.9, 151.2),
        what: "Sydney by coordinates (nearest: ap-northeast)",
    },
    DemoNetwork {
        cidr: "200.160.0.0/20",
        place: Place::Coords(-23.5, -46.6),
        what: "NIC.br, São Paulo by coordinates (nearest: us-east)",
    },
];

/// Client subnets a test or the tour uses per default region (first demo prefix of each).
pub fn demo_subnet(region: &str) -> Option<&'static str> {
    DEMO_NETWORKS
        .iter()
        .find(|n| matches!(n.place, Place::Region(r) if r == region) && !n.cidr.contains(':'))
        .map(|n| n.cidr)
}

/// Router health timings.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthTiming {
    /// `health.probe_interval`.
    pub probe_interval: Duration,
    /// `health.probe_timeout`.
    pub probe_timeout: Duration,
    /// `health.probe_jitter`.
    pub probe_jitter: Duration,
    /// `health.rise`.
    pub rise: u32,
    /// `health.fall`.
    pub fall: u32,
    /// `health.report_max_age`.
    pub report_max_age: Duration,
}

impl Default for HealthTiming {
    /// 500 ms probes, 300 ms timeout, rise 2, fall 3 (a dead edge leaves answers within
    /// about 1.5–2 s), reports older than 3 s stale.
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(300),
            probe_jitter: Duration::from_millis(50),
            rise: 2,
            fall: 3,
            report_max_age: Duration::from_secs(3),
        }
    }
}

/// Everything needed to start a fleet. Build with [`crate::fleet::Fleet::builder`], change
/// fields or use the setters, then [`FleetSpec::start`](crate::fleet::FleetSpec::start).
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Regions, one edge each.
    pub regions: Vec<RegionSpec>,
    /// (DNS, admin) address of each router; port 0 = any free port. Default: one router on
    /// 127.0.0.1:0 / 127.0.0.1:0.
    pub routers: Vec<(SocketAddr, SocketAddr)>,
    /// The demo origin's address. Default 127.0.0.1:0.
    pub origin: SocketAddr,
    /// Delay origin responses by its latency profile.
    pub origin_latency_profile: bool,
    /// A MaxMind City/Country database for the routers (`geo.database`); the demo map still
    /// overrides it for its prefixes.
    pub geo_database: Option<PathBuf>,
    /// Put the demo map in the router config (`[[geo.networks]]`). Default true.
    pub demo_geo_map: bool,
    /// The operator token (router `operate` role, edge purge).
    pub token: String,
    /// Router health timings.
    pub health: HealthTiming,
    /// Edge `report.interval`. Default 250 ms.
    pub report_interval: Duration,
    /// TTL of the service answers. Default 5 s.
    pub service_ttl: u32,
    /// Edges per answer. Default 1.
    pub answers: usize,
    /// Edge `http.workers`. Default 1.
    pub edge_workers: usize,
    /// Give each edge a disk cache directory (survives restarts). Default true.
    pub disk_cache: bool,
    /// Edge `cache.memory` (bytesize string). Default `32 MiB`.
    pub cache_memory: String,
    /// Edge `cache.disk`. Default `64 MiB`.
    pub cache_disk: String,
    /// `lifecycle.shutdown_grace` of every process. Default 5 s.
    pub shutdown_grace: Duration,
    /// TOML lines added inside the edges' `[[hosts]]` table (e.g. `grace = "30s"`).
    pub host_extra: String,
    /// Whole TOML tables appended to every edge config.
    pub edge_extra: String,
    /// Whole TOML tables appended to every router config.
    pub router_extra: String,
    /// `--log-level` of routers and edges. Default `info` (or `$CDN_TEST_LOG_LEVEL`).
    pub log_level: String,
    /// Where configs and caches go; default a temporary directory removed on drop.
    pub workdir: Option<PathBuf>,
    /// Echo child logs to stderr: `none`, `problems` (WARN/ERROR lines) or `all`.
    pub echo: crate::harness::process::Echo,
    /// Run the fleet on the NATS bus: start `nats-server` (JetStream, store in the work dir)
    /// and give routers and edges a `[bus]` section. Default false (direct HTTP mode).
    pub bus: bool,
    /// NATS servers: 1, or a JetStream cluster of this many nodes on loopback (the stream and
    /// bucket then get `min(nodes, 3)` replicas). Default 1.
    pub nats_nodes: usize,
    /// TOML lines added inside the `[bus]` section of every router and edge (e.g.
    /// `purge_ack_timeout = "1s"`).
    pub bus_extra: String,
    /// Edges per region, on `127.0.R.1` … `127.0.R.N` (ids `use1`, `use2`, …; see
    /// [`super::pop::edge_slots`]). Default 1.
    pub edges_per_region: usize,
    /// Leave `[cluster]` out even with several edges per region (each edge fills alone).
    /// Default false.
    pub no_cluster: bool,
    /// The `www` host's shield region (`[[cluster.shields]]`). Default none.
    pub shield: Option<String>,
    /// TOML lines added inside every edge's `[cluster]` (e.g. `replicate_after = 1`).
    pub cluster_extra: String,
}

impl Default for FleetSpec {
    fn default() -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        Self {
            regions: default_regions(),
            routers: vec![(any, any)],
            origin: any,
            origin_latency_profile: false,
            geo_database: None,
            demo_geo_map: true,
            token: DEMO_TOKEN.into(),
            health: HealthTiming::default(),
            report_interval: Duration::from_millis(250),
            service_ttl: 5,
            answers: 1,
            edge_workers: 1,
            disk_cache: true,
            cache_memory: "32 MiB".into(),
            cache_disk: "64 MiB".into(),
            shutdown_grace: Duration::from_secs(5),
            host_extra: String::new(),
            edge_extra: String::new(),
            router_extra: String::new(),
            log_level: std::env::var("CDN_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            workdir: None,
            echo: crate::harness::process::Echo::None,
            bus: false,
            nats_nodes: 1,
            bus_extra: String::new(),
            edges_per_region: 1,
            no_cluster: false,
            shield: None,
            cluster_extra: String::new(),
        }
    }
}

impl FleetSpec {
    /// Run `n` routers (each on 127.0.0.1 with free ports).
    pub fn routers(mut self, n: usize) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        self.routers = vec![(any, any); n.max(1)];
        self
    }

    /// Run on the NATS bus (see [`FleetSpec::bus`]).
    pub fn bus_nats(mut self) -> Self {
        self.bus = true;
        self
    }

    /// Run `n` edges per region, clustered into a PoP (see [`FleetSpec::edges_per_region`]).
    pub fn edges_per_region(mut self, n: usize) -> Self {
        self.edges_per_region = n.max(1);
        self
    }

    /// Keep only the named regions (in the given order).
    pub fn only_regions(mut self, names: &[&str]) -> Self {
        self.regions = names
            .iter()
            .filter_map(|n| self.regions.iter().find(|r| r.name == *n).cloned())
            .collect();
        self
    }

    /// Set the router health timings.
    pub fn health(mut self, h: HealthTiming) -> Self {
        self.health = h;
        self
    }

    /// Add TOML lines inside the edges' `[[hosts]]` table.
    pub fn host_extra(mut self, toml: &str) -> Self {
        self.host_extra.push_str(toml);
        self.host_extra.push('\n');
        self
    }

    /// Set the announced capacity of one region's edge.
    pub fn capacity(mut self, region: &str, cap: Capacity) -> Self {
        for r in &mut self.regions {
            if r.name == region {
                r.capacity = cap;
            }
        }
        self
    }

    /// Probe one region's edge at `url` instead (`{origin}` = the origin's base URL).
    pub fn probe_url(mut self, region: &str, url: &str) -> Self {
        for r in &mut self.regions {
            if r.name == region {
                r.probe_url = Some(url.to_string());
            }
        }
        self
    }

    /// Use a MaxMind database in the routers.
    pub fn geo_database(mut self, path: impl Into<PathBuf>) -> Self {
        self.geo_database = Some(path.into());
        self
    }

    /// The region whose name or edge id is `name`.
    pub fn region(&self, name: &str) -> Option<&RegionSpec> {
        self.regions
            .iter()
            .find(|r| r.name == name || r.edge_id == name)
    }
}

/// One edge's addresses, fixed before anything starts.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePlan {
    /// Edge id.
    pub id: String,
    /// Region name.
    pub region: String,
    /// The address answered in DNS.
    pub ip: Ipv4Addr,
    /// Client HTTP listener.
    pub http: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// A probe URL other than the edge's own `/healthz` (see [`RegionSpec::probe_url`]).
    pub probe_override: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_txt_exceeds_the_udp_payload_limit() {
        let total: usize = (0..BIG_TXT_RECORDS).map(|i| big_txt_string(i).len()).sum();
        assert!(total > 1232 + 100, "{total}");
        assert!((0..BIG_TXT_RECORDS).all(|i| big_txt_string(i).len() == BIG_TXT_LEN));
        assert_ne!(big_txt_string(0), big_txt_string(1));
    }

    #[test]
    fn demo_map_covers_each_default_region() {
        for r in default_regions() {
            assert!(demo_subnet(&r.name).is_some(), "{}", r.name);
        }
        assert_eq!(demo_subnet("us-east"), Some("8.8.8.0/24"));
        assert_eq!(demo_subnet("eu-west"), Some("81.2.69.0/24"));
        assert_eq!(demo_subnet("ap-northeast"), Some("1.0.16.0/24"));
        for n in DEMO_NETWORKS {
            assert!(n.cidr.parse::<ipnet::IpNet>().is_ok(), "{}", n.cidr);
        }
    }
}
