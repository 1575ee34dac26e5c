//! The admin plane over HTTPS between router and edge (issue 17, part 3): the edge's admin
//! listener serves a demo-CA certificate and takes role tokens; the router purges through an
//! `https://` `admin_url`, verifying the edge's certificate with `health.probe_ca_file`. Without
//! that CA the purge fails (502) instead of talking to an unverified edge; a `read` token may
//! read the edge's metrics but not purge.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cdn_tests::harness::certs::DemoCa;
use cdn_tests::harness::{binary, http, Process};
use cdn_tests::origin::OriginHandle;

const PURGE_TOKEN: &str = "purge-secret";
const READ_TOKEN: &str = "read-secret";

fn spawn(name: &str, bin: &str, config: &Path) -> Process {
    let args = [
        "--config".to_string(),
        config.display().to_string(),
        "--log-format".to_string(),
        "json".to_string(),
    ];
    let mut p = Process::spawn(name, &binary(bin).unwrap(), &args, &[]).unwrap();
    p.wait_ready(Duration::from_secs(30)).unwrap();
    p
}

fn edge_toml(origin: SocketAddr, cert: &Path, key: &Path) -> String {
    format!(
        r#"
[edge]
id = "tls1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 1
[admin]
listen = "127.0.0.1:0"
read_access = "token"
tls_cert = "{}"
tls_key = "{}"
tokens = [
  {{ name = "router", role = "operate", token = "{PURGE_TOKEN}" }},
  {{ name = "prometheus", role = "read", token = "{READ_TOKEN}" }},
]
[cache]
memory = "16 MiB"
[[hosts]]
name = "www.tls.test"
origin = "http://{origin}"
"#,
        cert.display(),
        key.display()
    )
}

fn router_toml(admin_port: u16, ca: Option<&Path>) -> String {
    let ca = ca
        .map(|p| format!("probe_ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        r#"
[dns]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
purge_token = "{PURGE_TOKEN}"
tokens = [ {{ name = "ops", role = "operate", token = "ops-secret" }} ]
[health]
probe_interval = "200ms"
{ca}
[[regions]]
name = "r1"
lat = 0.0
lon = 0.0
[[edges]]
id = "tls1"
region = "r1"
ipv4 = ["127.0.0.1"]
admin_url = "https://localhost:{admin_port}"
[[zones]]
name = "tls.test"
ns = ["ns1.tls.test"]
[[services]]
name = "www.tls.test"
"#
    )
}

fn https(addr: SocketAddr, cert: &Path, request: &str) -> (u16, String) {
    cdn_tests::harness::tls::request_verified(addr, cert, request)
}

fn purge(router_admin: SocketAddr) -> http::Reply {
    http::post(router_admin, "/api/v1/purge")
        .bearer("ops-secret")
        .json(&serde_json::json!({"urls": ["http://www.tls.test/obj/1k/p"]}))
        .send()
        .unwrap()
}

#[test]
fn router_purges_edges_over_verified_https_with_role_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DemoCa::new("admin plane test CA").unwrap();
    let (cert, key) = ca
        .leaf(&["localhost"])
        .unwrap()
        .write(dir.path(), "edge-admin")
        .unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();

    let edge_cfg = dir.path().join("edge.toml");
    std::fs::write(&edge_cfg, edge_toml(origin.addr(), &cert, &key)).unwrap();
    let edge = spawn("edge", "edge", &edge_cfg);
    let edge_http = edge.addr("http", "http").unwrap();
    let edge_admin = edge.addr("http", "admin").unwrap();

    // Fill the object.
    let r = http::get(edge_http, "/obj/1k/p")
        .host("www.tls.test")
        .send()
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(http::get(edge_http, "/obj/1k/p")
        .host("www.tls.test")
        .send()
        .unwrap()
        .is_hit());

    // The edge's admin speaks TLS only, with the demo certificate; role tokens apply.
    let get = |auth: &str| {
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
    };
    let read = format!("Authorization: Bearer {READ_TOKEN}\r\n");
    assert_eq!(https(edge_admin, &ca_path, &get(&read)).0, 200);
    assert_eq!(
        https(edge_admin, &ca_path, &get("")).0,
        401,
        "read_access = token"
    );
    assert!(
        http::get(edge_admin, "/healthz").send().is_err(),
        "plain HTTP is not served"
    );

    // A router that trusts the CA purges through https:// and the edge applies it.
    let r_cfg = dir.path().join("router.toml");
    std::fs::write(&r_cfg, router_toml(edge_admin.port(), Some(&ca_path))).unwrap();
    let router = spawn("router", "dns-router", &r_cfg);
    let r_admin = router.addr("http", "admin").unwrap();
    let p = purge(r_admin);
    assert_eq!(p.status, 200, "{}", p.text());
    let v: serde_json::Value = p.json().unwrap();
    assert_eq!(v["results"][0]["ok"], true, "{v}");
    assert_eq!(v["results"][0]["purged"], 1, "{v}");
    let after = http::get(edge_http, "/obj/1k/p")
        .host("www.tls.test")
        .send()
        .unwrap();
    assert!(!after.is_hit(), "purged: {:?}", after.cache_status());
    drop(router);

    // A router without the CA does not trust the edge: the purge fails, nothing is sent.
    std::fs::write(&r_cfg, router_toml(edge_admin.port(), None)).unwrap();
    let router = spawn("router2", "dns-router", &r_cfg);
    let p = purge(router.addr("http", "admin").unwrap());
    assert_eq!(p.status, 502, "{}", p.text());
    let v: serde_json::Value = p.json().unwrap();
    assert_eq!(v["results"][0]["ok"], false, "{v}");
    drop(router);

    // A read token may not purge the edge directly.
    let body = r#"{"urls":["http://www.tls.test/obj/1k/p"]}"#;
    let post = |token: &str| {
        format!(
            "POST /api/v1/purge HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    assert_eq!(https(edge_admin, &ca_path, &post(READ_TOKEN)).0, 403);
    assert_eq!(https(edge_admin, &ca_path, &post(PURGE_TOKEN)).0, 200);
    drop(edge);
}
