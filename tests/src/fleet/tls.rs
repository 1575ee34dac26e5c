//! The fleet's HTTPS: a demo CA (`<workdir>/ca.pem`, for `curl --cacert`) and one leaf
//! certificate per demo host (`www`, `img`, `secure`) plus the edges' default, made with
//! rcgen at start and shared by every edge; the TOML that puts them in each edge's config
//! (`[tls]` on the edge's HTTPS port, `tls = { … }` per host). `www` sends HSTS; the demo
//! host [`HTTPS_ONLY_HOST`] (same origin, not in DNS: use `--resolve`) redirects plain HTTP
//! to HTTPS, so the other hosts stay reachable over plain HTTP for the rest of the tour.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::harness::certs::DemoCa;

use super::spec::{IMG_HOST, SECURE_SERVICE, SERVICE, ZONE};

/// Certificate and key files of one name set.
#[derive(Debug, Clone)]
pub struct Pair {
    /// PEM chain (leaf, then the demo CA).
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// The files written by [`DemoTls::write`].
#[derive(Debug, Clone)]
pub struct DemoTls {
    /// The demo CA certificate (`<workdir>/ca.pem`).
    pub ca: PathBuf,
    /// The edges' default certificate (`edge.<zone>`), for any other SNI.
    pub default: Pair,
    /// Per host: (host name as in `[[hosts]]`, its files).
    pub hosts: Vec<(&'static str, Pair)>,
}

/// HSTS max-age the demo hosts send (one day: it is a demo).
pub const DEMO_HSTS_MAX_AGE: &str = "1d";
/// A demo host served only over HTTPS: plain HTTP gets a 308 to `https://…:<https port>`.
pub const HTTPS_ONLY_HOST: &str = "login.cdn.example.test";

impl DemoTls {
    /// Make the CA and the leaves and write them under `dir` (`ca.pem`, `tls/<name>.pem|key`).
    pub fn write(dir: &Path) -> anyhow::Result<DemoTls> {
        let ca = DemoCa::new("cdn-tests fleet demo CA")?;
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem())?;
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let edge_name = format!("edge.{ZONE}");
        let img_wild = IMG_HOST.replacen("photos.", "*.", 1);
        let img_bare = IMG_HOST.replacen("photos.", "", 1);
        let write = |stem: &str, names: &[&str]| -> anyhow::Result<Pair> {
            let (cert, key) = ca.leaf(names)?.write(&tls_dir, stem)?;
            Ok(Pair { cert, key })
        };
        Ok(DemoTls {
            ca: ca_path,
            default: write("default", &[&edge_name])?,
            hosts: vec![
                (SERVICE, write("www", &[SERVICE])?),
                (IMG_HOST, write("img", &[&img_wild, &img_bare])?),
                (SECURE_SERVICE, write("secure", &[SECURE_SERVICE])?),
                (HTTPS_ONLY_HOST, write("login", &[HTTPS_ONLY_HOST])?),
            ],
        })
    }

    /// The edge's `[tls]` section: HTTPS on `https`, the default certificate, certificate
    /// files checked every 2 s.
    pub fn edge_section(&self, https: SocketAddr) -> String {
        format!(
            "\n[tls]\nlisten = [{}]\ncert = {}\nkey = {}\nreload_check_interval = \"2s\"\n",
            q(&https.to_string()),
            q(&self.default.cert.display().to_string()),
            q(&self.default.key.display().to_string()),
        )
    }

    /// The `[[hosts]]` block of [`HTTPS_ONLY_HOST`], filling from `origin`.
    pub fn https_only_host(&self, origin: &str) -> String {
        format!(
            "\n[[hosts]]\nname = {}\norigin = {}\n{}",
            q(HTTPS_ONLY_HOST),
            q(origin),
            self.host_line(HTTPS_ONLY_HOST)
        )
    }

    /// The `tls = { … }` line of host `name` inside its `[[hosts]]` block ("" for a host
    /// without a demo certificate). `www` also sends HSTS; [`HTTPS_ONLY_HOST`] sends HSTS
    /// with `includeSubDomains` and redirects plain HTTP (308).
    pub fn host_line(&self, name: &str) -> String {
        let Some((_, p)) = self.hosts.iter().find(|(h, _)| *h == name) else {
            return String::new();
        };
        let mut t = format!(
            "tls = {{ cert = {}, key = {}",
            q(&p.cert.display().to_string()),
            q(&p.key.display().to_string())
        );
        if name == SERVICE || name == HTTPS_ONLY_HOST {
            let _ = write!(t, ", hsts_max_age = {}", q(DEMO_HSTS_MAX_AGE));
        }
        if name == HTTPS_ONLY_HOST {
            t.push_str(", hsts_include_subdomains = true, redirect = 308");
        }
        t.push_str(" }\n");
        t
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_certificates_load_and_the_lines_parse() {
        let dir = tempfile::tempdir().unwrap();
        let t = DemoTls::write(dir.path()).unwrap();
        assert!(t.ca.is_file());
        for (name, p) in &t.hosts {
            cdn_shared::config::certs::load_certified_key(&p.cert, name, &p.key, name).unwrap();
        }
        let text = format!(
            "[edge]\nid = \"e\"\nregion = \"r\"\n{}\n[[hosts]]\nname = {}\norigin = \"http://127.0.0.1:9\"\n{}\n\
             [[hosts]]\nname = {}\norigin = \"http://127.0.0.1:9\"\n{}",
            t.edge_section("127.0.1.1:8443".parse().unwrap()),
            q(SERVICE),
            t.host_line(SERVICE),
            q(IMG_HOST),
            t.host_line(IMG_HOST),
        ) + &t.https_only_host("http://127.0.0.1:9");
        let c: cdn_shared::config::edge::EdgeConfig =
            cdn_shared::config::load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.tls.unwrap().listen, ["127.0.1.1:8443".parse().unwrap()]);
        let www = c.hosts[0].tls.as_ref().unwrap();
        assert_eq!((www.redirect, www.hsts_max_age.is_some()), (None, true));
        let login = c.hosts[2].tls.as_ref().unwrap();
        assert_eq!(c.hosts[2].name, HTTPS_ONLY_HOST);
        assert_eq!(
            (login.redirect, login.hsts_include_subdomains),
            (Some(308), true)
        );
        let img = c.hosts[1].tls.as_ref().unwrap();
        assert_eq!((img.redirect, img.cert_pair().is_some()), (None, true));
        assert!(t.host_line("other.example.test").is_empty());
    }
}
