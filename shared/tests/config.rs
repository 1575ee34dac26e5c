//! Config loading end to end: a file, `CDN_*` overrides, and every class of error the issue
//! names (unknown key, bad CIDR, bad duration, bad address, missing required key, port out of
//! range, duplicate edge id), each reported with the file and the key.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error

use std::path::Path;

use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::config::{load, ConfigError};
use figment::Jail;

const ROUTER: &str = r#"
[dns]
listen = ["127.0.0.1:8553"]

[admin]
listen = "127.0.0.1:8053"
token = "secret"

[[regions]]
name = "us-east"
lat = 39.0
lon = -77.5

[[regions]]
name = "eu-west"
lat = 53.3
lon = -6.3
backups = ["us-east"]

[[edges]]
id = "use1"
region = "us-east"
ipv4 = ["127.0.1.1"]
probe_url = "http://127.0.1.1:8081/healthz"

[[edges]]
id = "euw1"
region = "eu-west"
ipv4 = ["127.0.2.1"]

[geo]
default_region = "us-east"
networks = [{ cidr = "8.8.8.0/24", region = "us-east" }]

[[zones]]
name = "cdn.example.test"
ns = ["ns1.cdn.example.test"]

[[zones.records]]
name = "static"
type = "A"
data = ["192.0.2.99"]

[[services]]
name = "www.cdn.example.test"
"#;

const EDGE: &str = r#"
[edge]
id = "use1"
region = "us-east"

[http]
listen = ["127.0.1.1:8081"]

[cache]
memory = "64MiB"

[[hosts]]
name = "www.cdn.example.test"
origin = "http://127.0.0.1:8080"
"#;

fn router_err(jail: &mut Jail, text: &str) -> ConfigError {
    jail.create_file("router.toml", text).unwrap();
    load::<RouterConfig>(Some(Path::new("router.toml"))).unwrap_err()
}

fn edge_err(jail: &mut Jail, text: &str) -> ConfigError {
    jail.create_file("edge.toml", text).unwrap();
    load::<EdgeConfig>(Some(Path::new("edge.toml"))).unwrap_err()
}

fn assert_names(e: &ConfigError, file: &str, key: &str) {
    let shown = e.to_string();
    assert_eq!(e.key, key, "wrong key in: {shown}");
    assert!(shown.contains(file), "file missing in: {shown}");
    assert!(shown.contains(key), "key missing in: {shown}");
}

#[test]
fn valid_configs_load_with_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file("router.toml", ROUTER)?;
        let r: RouterConfig = load(Some(Path::new("router.toml"))).unwrap();
        assert_eq!(r.health.rise, 2);
        assert_eq!(r.health.fall, 3);
        assert_eq!(r.services[0].ttl, 30);
        assert_eq!(r.edges[1].probe_url(), "http://127.0.2.1/healthz");
        jail.create_file("edge.toml", EDGE)?;
        let e: EdgeConfig = load(Some(Path::new("edge.toml"))).unwrap();
        assert_eq!(e.cache.memory, bytesize::ByteSize::mib(64));
        assert_eq!(e.cache.chunk_size, bytesize::ByteSize::mib(1));
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("router.toml", ROUTER)?;
        jail.set_env("CDN_HEALTH__FALL", "5");
        jail.set_env("CDN_ADMIN__LISTEN", "127.0.0.1:9999");
        let r: RouterConfig = load(Some(Path::new("router.toml"))).unwrap();
        assert_eq!(r.health.fall, 5);
        assert_eq!(r.admin.listen.port(), 9999);
        jail.set_env("CDN_HEALTH__PROBE_TIMEOUT", "soon");
        let e = load::<RouterConfig>(Some(Path::new("router.toml"))).unwrap_err();
        assert_eq!(e.key, "health.probe_timeout");
        assert!(e.to_string().contains("environment"), "{e}");
        Ok(())
    });
}

#[test]
fn secrets_from_the_environment_are_text_and_other_cdn_variables_are_ignored() {
    Jail::expect_with(|jail| {
        jail.create_file("edge.toml", EDGE)?;
        // A numeric or boolean-looking token is the token, as written.
        jail.set_env("CDN_REPORT__TOKEN", "007123");
        jail.set_env("CDN_ADMIN__TOKEN", "true");
        // Not a config key (no `__`): ignored, not "unknown key `home`".
        jail.set_env("CDN_HOME", "/opt/cdn");
        jail.set_env("CDN_HEALTH", "x");
        let e: EdgeConfig = load(Some(Path::new("edge.toml"))).unwrap();
        assert_eq!(e.report.token.as_deref(), Some("007123"));
        assert_eq!(e.admin.token.as_deref(), Some("true"));
        // Other keys are still typed.
        jail.set_env("CDN_CACHE__MEMORY", "32MiB");
        let e: EdgeConfig = load(Some(Path::new("edge.toml"))).unwrap();
        assert_eq!(e.cache.memory, bytesize::ByteSize::mib(32));
        jail.set_env("CDN_HTTP__WORKERS", "many");
        let err = load::<EdgeConfig>(Some(Path::new("edge.toml"))).unwrap_err();
        assert_eq!(err.key, "http.workers");
        Ok(())
    });
}

#[test]
fn unknown_key_is_named() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, &ROUTER.replace("[dns]\n", "[dns]\nlisten_udp = 1\n"));
        assert_names(&e, "router.toml", "dns.listen_udp");
        let e = edge_err(jail, &format!("colour = \"blue\"\n{EDGE}"));
        assert_names(&e, "edge.toml", "colour");
        Ok(())
    });
}

#[test]
fn bad_cidr_is_named() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, &ROUTER.replace("8.8.8.0/24", "8.8.8.0/33"));
        assert_names(&e, "router.toml", "geo.networks[0].cidr");
        Ok(())
    });
}

#[test]
fn bad_duration_is_named() {
    Jail::expect_with(|jail| {
        let text = format!("{ROUTER}\n[health]\nprobe_interval = \"fast\"\n");
        let e = router_err(jail, &text);
        assert_names(&e, "router.toml", "health.probe_interval");
        Ok(())
    });
}

#[test]
fn bad_address_is_named() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, &ROUTER.replace("127.0.0.1:8053", "localhost-ish"));
        assert_names(&e, "router.toml", "admin.listen");
        let e = router_err(jail, &ROUTER.replace("\"127.0.1.1\"]", "\"127.0.1.300\"]"));
        assert_names(&e, "router.toml", "edges[0].ipv4[0]");
        Ok(())
    });
}

#[test]
fn missing_required_key_is_named() {
    Jail::expect_with(|jail| {
        let e = edge_err(jail, &EDGE.replace("id = \"use1\"\n", ""));
        assert_names(&e, "edge.toml", "edge.id");
        let e = router_err(
            jail,
            &ROUTER.replace("ns = [\"ns1.cdn.example.test\"]\n", ""),
        );
        assert_names(&e, "router.toml", "zones[0].ns");
        Ok(())
    });
}

#[test]
fn port_out_of_range_is_named() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, &ROUTER.replace("127.0.0.1:8553", "127.0.0.1:70000"));
        assert_names(&e, "router.toml", "dns.listen[0]");
        let e = edge_err(jail, &EDGE.replace("127.0.0.1:8080", "127.0.0.1:99999"));
        assert_names(&e, "edge.toml", "hosts[0].origin");
        Ok(())
    });
}

#[test]
fn duplicate_edge_id_is_named() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, &ROUTER.replace("id = \"euw1\"", "id = \"use1\""));
        assert_names(&e, "router.toml", "edges[1].id");
        assert!(e.message.contains("duplicate"), "{e}");
        Ok(())
    });
}

#[test]
fn cross_references_are_checked() {
    Jail::expect_with(|jail| {
        let e = router_err(
            jail,
            &ROUTER.replace("region = \"eu-west\"\nipv4", "region = \"mars\"\nipv4"),
        );
        assert_names(&e, "router.toml", "edges[1].region");
        let text = ROUTER.replace(
            "name = \"www.cdn.example.test\"",
            "name = \"www.other.test\"",
        );
        let e = router_err(jail, &text);
        assert_names(&e, "router.toml", "services[0].name");
        let e = router_err(jail, &ROUTER.replace("type = \"A\"", "type = \"HINFO\""));
        assert_names(&e, "router.toml", "zones[0].records[0].type");
        Ok(())
    });
}

#[test]
fn syntax_error_and_missing_file_name_the_file() {
    Jail::expect_with(|jail| {
        let e = router_err(jail, "[dns\nlisten = 1");
        assert!(e.to_string().contains("router.toml"), "{e}");
        let e = load::<RouterConfig>(Some(Path::new("nope.toml"))).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        Ok(())
    });
}
