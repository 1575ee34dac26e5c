//! Compression at the edge (`[hosts.compress]`, issue 14 point 5), against the real `edge`
//! binary: each coding decoded back to exactly the origin's bytes with one origin fetch for
//! all codings and identity (inline and chunked bodies), q-values, an already-encoded origin
//! response and an incompressible type passed as they are, HEAD and Range on an encoded
//! variant, purges (URL, tag) removing the encoded variants, the metrics.

mod cache_support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cache_support::{request, Origin, OriginResp, Resp};
use cdn_tests::harness::Process;

const TOKEN: &str = "t0ken";

struct Proc {
    _p: Process,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Proc {
    fn start(config: &Path) -> Proc {
        let args = [
            "--config".to_string(),
            config.display().to_string(),
            "--log-level".to_string(),
            "info".to_string(),
        ];
        let mut p = Process::spawn("edge", Path::new(env!("CARGO_BIN_EXE_edge")), &args, &[])
            .expect("edge binary starts");
        p.wait_ready(Duration::from_secs(30)).expect("edge ready");
        let http = p.addr("http", "http").expect("http listener");
        let admin = p.addr("http", "admin").expect("admin listener");
        Proc { _p: p, http, admin }
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("host", "example.test")];
        h.extend_from_slice(headers);
        request(self.http, method, path, &h, b"").expect("edge answers")
    }

    fn get(&self, path: &str, ae: Option<&str>) -> Resp {
        match ae {
            Some(v) => self.req("GET", path, &[("accept-encoding", v)]),
            None => self.req("GET", path, &[]),
        }
    }

    fn purge(&self, body: &str) {
        let auth = format!("Bearer {TOKEN}");
        let r = request(
            self.admin,
            "POST",
            "/api/v1/purge",
            &[
                ("host", "admin"),
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
            ],
            body.as_bytes(),
        )
        .expect("purge answers");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    fn metric(&self, prefix: &str) -> f64 {
        let r = request(self.admin, "GET", "/metrics", &[("host", "admin")], b"").unwrap();
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    }
}

fn write_config(dir: &Path, origin: &str) -> std::path::PathBuf {
    let path = dir.join("edge.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[edge]
id = "cz1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[cache]
memory = "32 MiB"
chunk_size = "64 KiB"
[lifecycle]
shutdown_grace = "1s"
[[hosts]]
name = "example.test"
origin = "{origin}"
[hosts.compress]
min_size = "512 B"
"#
        ),
    )
    .unwrap();
    path
}

/// Realistic, deterministic JavaScript-like text of `n` bytes.
fn js(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        "function",
        "return",
        "const",
        "let",
        "value",
        "index",
        "length",
        "this",
        "=>",
        "document",
        "querySelector",
        "addEventListener",
        "null",
        "undefined",
        "true",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = words[(x >> 33) as usize % words.len()];
        out.extend_from_slice(w.as_bytes());
        out.extend_from_slice(match (x >> 20) % 7 {
            0 => b";\n",
            1 => b"(",
            2 => b") ",
            3 => b".",
            _ => b" ",
        });
        if (x >> 40).is_multiple_of(5) {
            out.extend_from_slice(format!("{}", (x >> 48) % 1000).as_bytes());
        }
    }
    out.truncate(n);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn decode(enc: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match enc {
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        "zstd" => out = zstd::stream::decode_all(data).expect("valid zstd"),
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn varies_on_ae(r: &Resp) -> bool {
    r.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("vary")
            && v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
    })
}

/// The demo-like origin: `/js/<n>` JavaScript (n bytes, ETag, tag `js`), `/json/small`
/// (below min_size), `/png` (incompressible type), `/pre.txt` (already gzip-encoded).
fn origin() -> Origin {
    Origin::start(|r, _| {
        let p = r.path.as_str();
        if let Some(n) = p.strip_prefix("/js/") {
            let n: usize = n.parse().unwrap();
            let etag = format!("\"js{n}\"");
            return OriginResp::new(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("content-type", "application/javascript; charset=utf-8"),
                    ("etag", etag.as_str()),
                    ("cache-tag", "js"),
                ],
                js(n, n as u64),
            );
        }
        match p {
            "/json/small" => OriginResp::new(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("content-type", "application/json"),
                ],
                &b"{\"ok\":true}"[..],
            ),
            "/png" => OriginResp::new(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("content-type", "image/png"),
                ],
                js(20_000, 9),
            ),
            "/pre.txt" => OriginResp::new(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("content-type", "text/plain"),
                    ("content-encoding", "gzip"),
                    ("vary", "Accept-Encoding"),
                ],
                gzip(&js(30_000, 3)),
            ),
            _ => OriginResp::new(404, &[], ""),
        }
    })
}

/// Each coding, then identity, on an inline (20 KB) and a chunked (300 KB, chunks of 64 KiB)
/// body: decoded bytes equal the origin's, one origin fetch in all; hits serve the stored
/// encoding (not recompressed: `cdn_edge_compress_total{result="cached"}`).
#[test]
fn every_coding_decodes_to_the_origin_bytes_with_one_fetch() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let e = Proc::start(&write_config(dir.path(), &o.url()));
    for (n, first_ae) in [(20_000usize, Some("br")), (300_000, None)] {
        let path = format!("/js/{n}");
        let want = js(n, n as u64);
        // The fill is served identity (streamed as it arrives), marked as varying.
        let first = e.get(&path, first_ae);
        assert_eq!(first.status, 200);
        assert_eq!(first.x_cache(), "MISS");
        assert_eq!(first.header("content-encoding"), None);
        assert!(varies_on_ae(&first), "{:?}", first.headers);
        assert!(first.body == want);
        for enc in ["br", "zstd", "gzip"] {
            for round in 0..2 {
                let r = e.get(&path, Some(enc));
                assert_eq!(r.status, 200, "{path} {enc}");
                assert_eq!(r.x_cache(), "HIT", "{path} {enc} round {round}");
                assert_eq!(r.header("content-encoding"), Some(enc), "{path}");
                assert!(varies_on_ae(&r), "{:?}", r.headers);
                let etag = format!("\"js{n}-{enc}\"");
                assert_eq!(r.header("etag"), Some(etag.as_str()));
                assert_eq!(
                    r.header("content-length"),
                    Some(r.body.len().to_string().as_str())
                );
                assert!(r.body.len() * 2 < want.len(), "{enc}: {}", r.body.len());
                assert!(decode(enc, &r.body) == want, "{path} {enc} decodes");
            }
        }
        let id = e.get(&path, Some("identity"));
        assert_eq!(id.x_cache(), "HIT");
        assert_eq!(id.header("content-encoding"), None);
        assert_eq!(id.header("etag"), Some(format!("\"js{n}\"").as_str()));
        assert!(varies_on_ae(&id));
        assert!(id.body == want);
        assert_eq!(o.count(&path), 1, "one origin fetch for {path}");
    }
    for enc in ["br", "zstd", "gzip"] {
        let label = format!("cdn_edge_compress_total{{encoding=\"{enc}\",result=\"encoded\"}}");
        assert_eq!(e.metric(&label), 2.0, "{label}");
        let label = format!("cdn_edge_compress_total{{encoding=\"{enc}\",result=\"cached\"}}");
        assert_eq!(e.metric(&label), 2.0, "{label}");
        let bytes_in = e.metric(&format!(
            "cdn_edge_compress_bytes_in_total{{encoding=\"{enc}\"}}"
        ));
        let bytes_out = e.metric(&format!(
            "cdn_edge_compress_bytes_out_total{{encoding=\"{enc}\"}}"
        ));
        assert_eq!(bytes_in, 320_000.0, "{enc}");
        assert!(
            bytes_out > 0.0 && bytes_out * 2.0 < bytes_in,
            "{enc}: {bytes_out}"
        );
    }
}

#[test]
fn q_values_choose_and_refuse() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let e = Proc::start(&write_config(dir.path(), &o.url()));
    let path = "/js/40000";
    assert_eq!(e.get(path, None).x_cache(), "MISS");
    let enc = |ae: &str| {
        e.get(path, Some(ae))
            .header("content-encoding")
            .map(String::from)
    };
    assert_eq!(enc("gzip;q=0, br").as_deref(), Some("br"));
    assert_eq!(enc("gzip, deflate, br").as_deref(), Some("br"));
    assert_eq!(enc("br;q=0.5, gzip").as_deref(), Some("gzip"));
    assert_eq!(
        enc("br;q=0, zstd;q=0.9, gzip;q=0.8").as_deref(),
        Some("zstd")
    );
    assert_eq!(enc("X-GZIP").as_deref(), Some("gzip"));
    assert_eq!(enc("*").as_deref(), Some("br"));
    assert_eq!(enc("*;q=0"), None, "nothing acceptable: identity fallback");
    assert_eq!(enc("identity"), None);
    assert_eq!(enc("deflate"), None);
    let r = e.get(path, Some("*;q=0"));
    assert!(r.body == js(40_000, 40_000));
    assert_eq!(o.count(path), 1);
}

#[test]
fn encoded_and_incompressible_responses_pass_as_they_are() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let e = Proc::start(&write_config(dir.path(), &o.url()));
    let pre = gzip(&js(30_000, 3));
    for i in 0..2 {
        let r = e.get("/pre.txt", Some("br, gzip"));
        assert_eq!(r.header("content-encoding"), Some("gzip"), "round {i}");
        assert!(
            r.body == pre,
            "the origin's gzip bytes, not compressed again"
        );
        let png = e.get("/png", Some("br, gzip"));
        assert_eq!(png.header("content-encoding"), None);
        assert!(!varies_on_ae(&png), "an incompressible type does not vary");
        assert!(png.body == js(20_000, 9));
        let small = e.get("/json/small", Some("br"));
        assert_eq!(small.header("content-encoding"), None, "below min_size");
        assert_eq!(small.body, b"{\"ok\":true}");
    }
    assert_eq!(e.metric("cdn_edge_compress_total"), 0.0);
}

#[test]
fn head_and_range_on_an_encoded_variant() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let e = Proc::start(&write_config(dir.path(), &o.url()));
    let path = "/js/100000";
    assert_eq!(e.get(path, None).x_cache(), "MISS");
    // HEAD first: it makes the variant and announces its length.
    let h = e.req("HEAD", path, &[("accept-encoding", "br")]);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-encoding"), Some("br"));
    assert!(varies_on_ae(&h));
    let full = e.get(path, Some("br"));
    let len = full.body.len();
    assert_eq!(h.header("content-length"), Some(len.to_string().as_str()));
    assert!(decode("br", &full.body) == js(100_000, 100_000));
    // Ranges are ranges of the encoded bytes.
    let r = e.req(
        "GET",
        path,
        &[("accept-encoding", "br"), ("range", "bytes=10-109")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-109/{len}").as_str())
    );
    assert_eq!(r.body, full.body[10..110]);
    // If-Range with the variant's (strong, suffixed) ETag keeps the range; the identity's
    // ETag does not match the encoded representation: the whole body.
    let r = e.req(
        "GET",
        path,
        &[
            ("accept-encoding", "br"),
            ("range", "bytes=-50"),
            ("if-range", "\"js100000-br\""),
        ],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[len - 50..]);
    let r = e.req(
        "GET",
        path,
        &[
            ("accept-encoding", "br"),
            ("range", "bytes=-50"),
            ("if-range", "\"js100000\""),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    // Conditional on the variant's ETag: 304 with Vary.
    let r = e.req(
        "GET",
        path,
        &[
            ("accept-encoding", "br"),
            ("if-none-match", "\"js100000-br\""),
        ],
    );
    assert_eq!(r.status, 304);
    assert!(varies_on_ae(&r));
    // Identity ranges are ranges of the identity bytes.
    let r = e.req("GET", path, &[("range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, js(100_000, 100_000)[..10]);
    assert_eq!(o.count(path), 1);
}

#[test]
fn purges_remove_the_encoded_variants() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let e = Proc::start(&write_config(dir.path(), &o.url()));
    let path = "/js/50000";
    let warm = |fetches: usize| {
        assert_eq!(e.get(path, Some("gzip")).x_cache(), "MISS");
        for enc in ["br", "gzip", "zstd"] {
            let r = e.get(path, Some(enc));
            assert_eq!(r.header("content-encoding"), Some(enc));
            assert_eq!(r.x_cache(), "HIT");
        }
        assert_eq!(o.count(path), fetches);
    };
    let encoded = || e.metric("cdn_edge_compress_total{encoding=\"br\",result=\"encoded\"}");
    warm(1);
    assert_eq!(encoded(), 1.0);
    e.purge(r#"{"urls":["example.test/js/50000"]}"#);
    warm(2);
    assert_eq!(encoded(), 2.0, "the br variant was purged and made again");
    e.purge(r#"{"tags":["js"]}"#);
    warm(3);
    assert_eq!(encoded(), 3.0);
    e.purge(r#"{"prefixes":["example.test/js/"]}"#);
    warm(4);
    assert_eq!(encoded(), 4.0);
}

#[test]
fn bad_compress_config_is_refused_naming_the_key() {
    let toml = "[edge]\nid = \"e1\"\nregion = \"r\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n[hosts.compress]\nbr_level = 12\n";
    let err = cdn_shared::config::load_str::<cdn_shared::config::edge::EdgeConfig>(toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hosts[0].compress.br_level"), "{err}");
    let toml = toml.replace("br_level = 12", "encodings = [\"lz4\"]");
    let err = cdn_shared::config::load_str::<cdn_shared::config::edge::EdgeConfig>(&toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("encodings"), "{err}");
}
