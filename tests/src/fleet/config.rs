//! The TOML files a fleet writes: one router config (shared by every router instance apart
//! from its listen addresses) and one config per edge. Pure text generation; the schemas
//! are `cdn_shared::config::{router, edge}`, and the unit tests load the output through them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::spec::{
    big_txt_string, EdgePlan, FleetSpec, Place, BIG_TXT_RECORDS, DEMO_COUNTRIES, DEMO_NETWORKS,
    IMG_HOST, IMG_SERVICE, SECURE_SERVICE, SERVICE, SIGNING_KEY_NAME, STATIC_A, ZONE,
};

impl EdgePlan {
    /// The URL the routers probe: `http://<ip>:<port>/healthz` on the client listener
    /// (unknown Host → health answer), unless overridden.
    pub fn probe_url(&self) -> String {
        self.probe_override
            .clone()
            .unwrap_or_else(|| format!("http://{}/healthz", self.http))
    }

    /// `http://<admin addr>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn dur(d: Duration) -> String {
    q(&format!("{}ms", d.as_millis()))
}

fn path(p: &Path) -> String {
    q(&p.display().to_string())
}

/// The report credential of edge `id` (a `report` token on every router).
pub fn report_token(spec: &FleetSpec, id: &str) -> String {
    format!("{}-report-{id}", spec.token)
}

/// The fleet's `dns.cookies.secret`: 32 hex digits derived from its token (the same for every
/// router of one fleet).
fn cookie_secret(token: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, token).hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// The router config for one instance listening on `dns` (UDP+TCP) and `admin`.
pub fn router_toml(
    spec: &FleetSpec,
    edges: &[EdgePlan],
    dns: SocketAddr,
    admin: SocketAddr,
) -> String {
    let mut t = String::new();
    let h = &spec.health;
    let _ = writeln!(
        t,
        "# Written by the cdn-tests fleet.\n\n[dns]\nlisten = [{}]\nudp_threads = 1\n",
        q(&dns.to_string())
    );
    // One DNS Cookie master key for every router of the fleet (RFC 9018 §4): a resolver's
    // cookie from one router is valid at the others.
    let _ = writeln!(
        t,
        "[dns.cookies]\nsecret = {}\n",
        q(&cookie_secret(&spec.token))
    );
    // Role tokens, as an operator would configure them: the fleet's token operates (and is
    // sent to the edges' purge API); each edge reports with a credential of its own.
    let _ = writeln!(
        t,
        "[admin]\nlisten = {}\npurge_token = {}\n\n[[admin.tokens]]\nname = \"operator\"\nrole = \"operate\"\ntoken = {}\n",
        q(&admin.to_string()),
        q(&spec.token),
        q(&spec.token)
    );
    for e in edges {
        let _ = writeln!(
            t,
            "[[admin.tokens]]\nname = {}\nrole = \"report\"\nedge = {}\ntoken = {}\n",
            q(&format!("report-{}", e.id)),
            q(&e.id),
            q(&report_token(spec, &e.id))
        );
    }
    let _ = writeln!(t, "[geo]");
    if let Some(db) = &spec.geo_database {
        let _ = writeln!(t, "database = {}", path(db));
    }
    if let Some(first) = spec.regions.first() {
        let _ = writeln!(t, "default_region = {}", q(&first.name));
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "[health]\nprobe_interval = {}\nprobe_timeout = {}\nprobe_jitter = {}\nrise = {}\nfall = {}\nreport_max_age = {}\n",
        dur(h.probe_interval),
        dur(h.probe_timeout),
        dur(h.probe_jitter),
        h.rise,
        h.fall,
        dur(h.report_max_age)
    );
    let _ = writeln!(
        t,
        "[lifecycle]\nshutdown_grace = {}\n",
        dur(spec.shutdown_grace)
    );
    if spec.demo_geo_map {
        for n in DEMO_NETWORKS {
            match n.place {
                Place::Region(r) if spec.regions.iter().any(|x| x.name == r) => {
                    let _ = writeln!(
                        t,
                        "[[geo.networks]]  # {}\ncidr = {}\nregion = {}\n",
                        n.what,
                        q(n.cidr),
                        q(r)
                    );
                }
                Place::Region(_) => {}
                Place::Coords(lat, lon) => {
                    let _ = writeln!(
                        t,
                        "[[geo.networks]]  # {}\ncidr = {}\nlat = {lat:?}\nlon = {lon:?}\n",
                        n.what,
                        q(n.cidr)
                    );
                }
            }
        }
    }
    for r in &spec.regions {
        let _ = writeln!(
            t,
            "[[regions]]\nname = {}\nlat = {:?}\nlon = {:?}\n",
            q(&r.name),
            r.lat,
            r.lon
        );
    }
    for e in edges {
        let _ = writeln!(
            t,
            "[[edges]]\nid = {}\nregion = {}\nipv4 = [{}]\nprobe_url = {}\nadmin_url = {}\n",
            q(&e.id),
            q(&e.region),
            q(&e.ip.to_string()),
            q(&e.probe_url()),
            q(&e.admin_url())
        );
    }
    let _ = writeln!(
        t,
        "[[zones]]\nname = {}\nns = [{}, {}]\nttl = 3600\n",
        q(ZONE),
        q(&format!("ns1.{ZONE}")),
        q(&format!("ns2.{ZONE}"))
    );
    let _ = writeln!(t, "[zones.soa]\nserial = 1\nminimum = 60\n");
    let records: Vec<(&str, &str, Vec<String>)> = vec![
        ("ns1", "A", vec!["127.0.0.1".into()]),
        ("ns2", "A", vec!["127.0.0.1".into()]),
        ("static", "A", vec![STATIC_A.to_string()]),
        ("static", "AAAA", vec!["2001:db8::99".into()]),
        ("alias", "CNAME", vec![format!("{SERVICE}.")]),
        (
            "big",
            "TXT",
            (0..BIG_TXT_RECORDS).map(big_txt_string).collect(),
        ),
    ];
    for (name, rtype, data) in records {
        let data: Vec<String> = data.iter().map(|d| q(d)).collect();
        let _ = writeln!(
            t,
            "[[zones.records]]\nname = {}\ntype = {}\ndata = [{}]\n",
            q(name),
            q(rtype),
            data.join(", ")
        );
    }
    for name in [SERVICE, IMG_SERVICE, SECURE_SERVICE] {
        let _ = writeln!(
            t,
            "[[services]]\nname = {}\nttl = {}\nanswers = {}\n",
            q(name),
            spec.service_ttl,
            spec.answers
        );
    }
    t.push_str(&spec.router_extra);
    t
}

/// The config of edge `e`, reporting to `routers` (admin base URLs), filling from `origin`.
pub fn edge_toml(
    spec: &FleetSpec,
    e: &EdgePlan,
    origin: &str,
    routers: &[String],
    cache_dir: Option<&Path>,
) -> String {
    let slots = super::pop::edge_slots(spec);
    let region = slots.iter().find(|r| r.edge_id == e.id);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by the cdn-tests fleet.\n\n[edge]\nid = {}\nregion = {}\n",
        q(&e.id),
        q(&e.region)
    );
    let _ = writeln!(
        t,
        "[http]\nlisten = [{}]\nworkers = {}\n",
        q(&e.http.to_string()),
        spec.edge_workers
    );
    let _ = writeln!(
        t,
        "[admin]\nlisten = {}\ntoken = {}\n",
        q(&e.admin.to_string()),
        q(&spec.token)
    );
    let _ = writeln!(t, "[cache]\nmemory = {}", q(&spec.cache_memory));
    if let Some(dir) = cache_dir {
        let _ = writeln!(
            t,
            "disk_path = {}\ndisk = {}",
            path(dir),
            q(&spec.cache_disk)
        );
    }
    let _ = writeln!(t);
    let routers: Vec<String> = routers.iter().map(|r| q(r)).collect();
    let _ = writeln!(
        t,
        "[report]\nrouters = [{}]\ninterval = {}\ntimeout = {}\ntoken = {}\n",
        routers.join(", "),
        dur(spec.report_interval),
        dur(spec.report_interval.max(Duration::from_millis(500))),
        q(&report_token(spec, &e.id))
    );
    if let Some(cap) = region.map(|r| r.capacity) {
        let mut lines = String::new();
        if let Some(v) = cap.active_connections {
            let _ = writeln!(lines, "active_connections = {v}");
        }
        if let Some(v) = cap.requests_per_sec {
            let _ = writeln!(lines, "requests_per_sec = {v:?}");
        }
        if let Some(v) = cap.egress_bytes_per_sec {
            let _ = writeln!(lines, "egress_bytes_per_sec = {v:?}");
        }
        if let Some(v) = cap.cpu {
            let _ = writeln!(lines, "cpu = {v:?}");
        }
        if !lines.is_empty() {
            let _ = writeln!(t, "[report.capacity]\n{lines}");
        }
    }
    let _ = writeln!(
        t,
        "[lifecycle]\nshutdown_grace = {}\n",
        dur(spec.shutdown_grace)
    );
    // The demo's header rules for www: CORS open to any origin, and which edge served.
    let www_rules = "cors = { allow_origins = [\"*\"] }\n\
                     headers = { response_set = { \"X-Served-By\" = \"$edge_id\" } }\n";
    let _ = writeln!(
        t,
        "[[hosts]]\nname = {}\norigin = {}\ncompress = {{}}\n{www_rules}{}",
        q(SERVICE),
        q(origin),
        spec.host_extra
    );
    t.push_str(&spec.edge_extra);
    t
}

/// The demo tenants every fleet edge also serves, after the `www` host: `img` (rate limit
/// 20/s burst 40, `KP` refused) and `secure` (signed URLs with the key in `signing_key`), and
/// the edge's `[geo]` network map `geo_map` (see [`demo_country_map`]). `host_tls(name)` is
/// each host's `tls = { … }` line (HTTPS, [`super::tls::DemoTls::host_line`]).
pub fn tenant_hosts_toml(
    origin: &str,
    signing_key: &Path,
    geo_map: &Path,
    host_tls: &dyn Fn(&str) -> String,
) -> String {
    format!(
        "\n[geo]\nnetwork_map = {}\n\n\
         [[hosts]]\nname = {}\naliases = [{}]\norigin = {}\n\
         rate_limit = {{ rate = 20.0, burst = 40 }}\n\
         geo = {{ deny_countries = [\"KP\"] }}\n{}\n\
         [[hosts]]\nname = {}\norigin = {}\n\
         signed_urls = {{ keys = [ {{ name = {}, key_file = {} }} ] }}\n{}",
        path(geo_map),
        q(IMG_HOST),
        q(&IMG_HOST.replacen("photos.", "", 1)),
        q(origin),
        host_tls(IMG_HOST),
        q(SECURE_SERVICE),
        q(origin),
        q(SIGNING_KEY_NAME),
        path(signing_key),
        host_tls(SECURE_SERVICE),
    )
}

/// The edges' `[geo]` network map: [`DEMO_COUNTRIES`] (placed at 0,0: the edge reads only the
/// country).
pub fn demo_country_map() -> String {
    let mut t =
        String::from("# Written by the cdn-tests fleet: countries for the edges' geo rules.\n");
    for (cidr, cc) in DEMO_COUNTRIES {
        let _ = writeln!(t, "{cidr} 0,0 country={cc}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::config::edge::EdgeConfig;
    use cdn_shared::config::load_str;
    use cdn_shared::config::router::RouterConfig;
    use cdn_shared::report::Capacity;

    fn plans(spec: &FleetSpec) -> Vec<EdgePlan> {
        spec.regions
            .iter()
            .map(|r| EdgePlan {
                id: r.edge_id.clone(),
                region: r.name.clone(),
                ip: r.ip,
                http: SocketAddr::from((r.ip, 8081)),
                admin: SocketAddr::from((r.ip, 9081)),
                probe_override: None,
            })
            .collect()
    }

    #[test]
    fn the_router_config_loads_through_the_real_schema() {
        let spec = FleetSpec::default().geo_database("/tmp/GeoLite2-City.mmdb");
        let text = router_toml(
            &spec,
            &plans(&spec),
            "127.0.0.1:8553".parse().unwrap(),
            "127.0.0.1:8053".parse().unwrap(),
        );
        let c: RouterConfig = load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.edges.len(), 3);
        assert_eq!(c.edges[0].probe_url(), "http://127.0.1.1:8081/healthz");
        assert_eq!(
            c.edges[1].admin_url.as_deref(),
            Some("http://127.0.2.1:9081")
        );
        assert_eq!(c.services.len(), 3);
        assert_eq!(c.admin.token, None, "no deprecated single token");
        assert_eq!(c.admin.purge_token.as_deref(), Some(spec.token.as_str()));
        // Every router of the fleet shares one cookie master key.
        assert!(c.dns.cookies.master_key().is_some());
        assert_eq!(c.dns.cookies.secret, Some(cookie_secret(&spec.token)));
        let operate: Vec<_> = c
            .admin
            .tokens
            .iter()
            .filter(|t| t.token == spec.token)
            .collect();
        assert_eq!(operate.len(), 1);
        assert_eq!(operate[0].role.as_str(), "operate");
        let reporters: Vec<_> = c
            .admin
            .tokens
            .iter()
            .filter_map(|t| t.edge.as_deref())
            .collect();
        assert_eq!(reporters.len(), 3, "one report credential per edge");
        assert!(c.geo.networks.len() >= 10);
        assert_eq!(c.health.probe_interval, Duration::from_millis(500));
        assert_eq!(c.geo.default_region.as_deref(), Some("us-east"));
        let big = c.zones[0].records.iter().find(|r| r.name == "big").unwrap();
        assert_eq!(big.data.len(), BIG_TXT_RECORDS);
    }

    #[test]
    fn a_fleet_with_fewer_regions_drops_their_map_entries() {
        let spec = FleetSpec::default().only_regions(&["eu-west"]);
        let text = router_toml(
            &spec,
            &plans(&spec),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        );
        let c: RouterConfig = load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.regions.len(), 1);
        assert!(c
            .geo
            .networks
            .iter()
            .all(|n| n.region.as_deref().unwrap_or("eu-west") == "eu-west"));
    }

    #[test]
    fn the_demo_tenants_load_through_the_real_schema() {
        let spec = FleetSpec::default();
        let e = &plans(&spec)[0];
        let text = edge_toml(&spec, e, "http://127.0.0.1:8080", &[], None)
            + &tenant_hosts_toml(
                "http://127.0.0.1:8080",
                Path::new("/tmp/k"),
                Path::new("/tmp/m"),
                &|_| String::new(),
            );
        let c: EdgeConfig = load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.hosts.len(), 3);
        assert!(c.hosts[0].cors.is_some());
        assert_eq!(
            c.hosts[0]
                .headers
                .response_set
                .get("X-Served-By")
                .map(String::as_str),
            Some("$edge_id")
        );
        assert_eq!(c.hosts[1].name, IMG_HOST);
        assert_eq!(c.hosts[1].rate_limit.as_ref().map(|r| r.burst), Some(40));
        assert_eq!(
            c.hosts[1].geo.as_ref().map(|g| g.deny_countries.clone()),
            Some(vec!["KP".to_string()])
        );
        assert_eq!(c.hosts[2].name, SECURE_SERVICE);
        assert!(c.hosts[2].signed_urls.is_some());
        assert_eq!(c.geo.network_map.as_deref(), Some(Path::new("/tmp/m")));
        let map = cdn_geo::locate::NetworkMap::parse_countries(&demo_country_map()).unwrap();
        assert_eq!(map.country_of("127.0.99.1".parse().unwrap()), Some("KP"));
    }

    #[test]
    fn the_edge_config_loads_through_the_real_schema() {
        let spec = FleetSpec::default().host_extra("grace = \"30s\"").capacity(
            "us-east",
            Capacity {
                requests_per_sec: Some(50.0),
                ..Default::default()
            },
        );
        let p = plans(&spec);
        let text = edge_toml(
            &spec,
            &p[0],
            "http://127.0.0.1:8080",
            &[
                "http://127.0.0.1:8053".into(),
                "http://127.0.0.1:8054".into(),
            ],
            Some(Path::new("/tmp/edge-cache")),
        );
        let c: EdgeConfig = load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.edge.id, "use1");
        assert_eq!(c.http.listen, vec!["127.0.1.1:8081".parse().unwrap()]);
        assert_eq!(c.report.routers.len(), 2);
        assert_eq!(c.report.capacity.requests_per_sec, Some(50.0));
        assert_eq!(c.hosts[0].grace, Some(Duration::from_secs(30)));
        assert_eq!(c.hosts[0].name, SERVICE);
        assert!(c.cache.disk_path.is_some());
        let text = edge_toml(&spec, &p[1], "http://127.0.0.1:8080", &[], None);
        let c: EdgeConfig = load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(c.cache.disk_path.is_none());
        assert_eq!(c.report.capacity, Capacity::default());
    }
}
