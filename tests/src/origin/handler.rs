//! The HTTP endpoints: `GET|HEAD /obj/<size>/<id>`, `/text/<size>/<id>` and
//! `/json/<size>/<id>` (with their query switches), `/_control`,
//! `/_stats`, `/_stats/reset`. Every other path is counted and answered 404.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::Stream;

use super::latency;
use super::object::{evaluate, parse_size, Conditions, Object, Outcome};
use super::state::{Control, FailMode, OriginState};

/// Bytes per body chunk written to the client.
const CHUNK: u64 = 64 * 1024;

/// Register the routes on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/obj/{size}/{id:.+}", web::get().to(object))
        .route("/obj/{size}/{id:.+}", web::head().to(object))
        .route("/text/{size}/{id:.+}", web::get().to(text))
        .route("/text/{size}/{id:.+}", web::head().to(text))
        .route("/json/{size}/{id:.+}", web::get().to(json))
        .route("/json/{size}/{id:.+}", web::head().to(json))
        .route("/_control", web::get().to(get_control))
        .route("/_control", web::post().to(post_control))
        .route("/_stats", web::get().to(get_stats))
        .route("/_stats/reset", web::post().to(reset_stats))
        .default_service(web::to(not_found));
}

type State = web::Data<Arc<OriginState>>;

/// Query switches of `/obj/…`.
#[derive(Debug, Default, PartialEq)]
struct Switches {
    max_age: u64,
    cache_control: Option<String>,
    cdn_cache_control: Option<String>,
    delay: Option<Duration>,
    throttle: Option<Duration>,
    tags: Vec<String>,
    vary: Option<String>,
    set_cookie: Option<String>,
    status: Option<StatusCode>,
}

fn parse_switches(query: &str) -> Result<Switches, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("bad query string: {e}"))?
        .into_inner();
    let mut s = Switches {
        max_age: 60,
        ..Default::default()
    };
    let num = |k: &str, v: &str| -> Result<u64, String> {
        v.parse::<u64>()
            .map_err(|_| format!("`{k}` must be a non-negative integer, got `{v}`"))
    };
    for (k, v) in pairs {
        match k.as_str() {
            "max_age" => s.max_age = num(&k, &v)?,
            "cc" => s.cache_control = Some(v),
            "cdn_cc" => s.cdn_cache_control = Some(v),
            "delay_ms" => s.delay = Some(Duration::from_millis(num(&k, &v)?)),
            "throttle_ms" => s.throttle = Some(Duration::from_millis(num(&k, &v)?)),
            "tag" => s.tags.extend(
                v.split([',', ' '])
                    .filter(|t| !t.is_empty())
                    .map(String::from),
            ),
            "vary" => s.vary = Some(v),
            "set_cookie" => s.set_cookie = Some(v),
            "status" => {
                let code = num(&k, &v)?;
                let st = u16::try_from(code)
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .filter(|c| c.as_u16() >= 200)
                    .ok_or_else(|| format!("`status` must be 200-999, got `{v}`"))?;
                s.status = Some(st);
            }
            // Unknown parameters are part of the URL (cache-busting ids), not switches.
            _ => {}
        }
    }
    Ok(s)
}

/// What `/obj`, `/text` and `/json` serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Pseudo-random bytes, `application/octet-stream`.
    Binary,
    /// Compressible text, `text/plain; charset=utf-8` ([`super::text::text`]).
    Text,
    /// A JSON array, `application/json` ([`super::text::json`]).
    Json,
}

async fn object(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> HttpResponse {
    serve_kind(req, path, state, Kind::Binary).await
}

async fn text(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> HttpResponse {
    serve_kind(req, path, state, Kind::Text).await
}

async fn json(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> HttpResponse {
    serve_kind(req, path, state, Kind::Json).await
}

async fn serve_kind(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
    kind: Kind,
) -> HttpResponse {
    state.count_request(req.path());
    let response = object_response(&req, &path.0, &path.1, &state, kind).await;
    state.count_status(response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0));
    match response {
        Some(r) => r,
        None => close_connection(),
    }
}

/// `None` means: close the connection without answering.
async fn object_response(
    req: &HttpRequest,
    size: &str,
    id: &str,
    state: &OriginState,
    kind: Kind,
) -> Option<HttpResponse> {
    let sw = match parse_switches(req.query_string()) {
        Ok(sw) => sw,
        Err(msg) => return Some(HttpResponse::BadRequest().body(msg + "\n")),
    };
    let delay = sw
        .delay
        .or_else(|| state.latency_profile().then(latency::sample));
    if let Some(d) = delay {
        actix_web::rt::time::sleep(d).await;
    }
    match state.fail() {
        Some(FailMode::Unavailable) => {
            return Some(
                HttpResponse::ServiceUnavailable()
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .body("origin failing (503 switch on)\n"),
            )
        }
        Some(FailMode::Close) => return None,
        Some(FailMode::Hang) => {
            actix_web::rt::time::sleep(Duration::from_secs(3600)).await;
            return None;
        }
        None => {}
    }
    let size_limit = match kind {
        Kind::Binary => u64::MAX,
        Kind::Text | Kind::Json => super::text::MAX_TEXT_SIZE,
    };
    let Some(size) = parse_size(size).filter(|s| *s <= size_limit) else {
        return Some(HttpResponse::NotFound().body(format!(
            "bad size `{size}`: use bytes or k/m/g suffixes, at most 2g\n"
        )));
    };
    let obj = Object {
        size,
        id: id.to_string(),
        version: state.version(),
    };

    if let Some(status) = sw.status.filter(|s| *s != StatusCode::OK) {
        let mut b = HttpResponse::build(status);
        cache_headers(&mut b, &sw);
        return Some(b.body(format!("forced status {}\n", status.as_u16())));
    }

    let h = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let cond = Conditions {
        if_none_match: h(header::IF_NONE_MATCH),
        if_modified_since: h(header::IF_MODIFIED_SINCE),
        range: h(header::RANGE),
        if_range: h(header::IF_RANGE),
    };
    let outcome = evaluate(&obj, &cond);
    let status = match outcome {
        Outcome::Full => StatusCode::OK,
        Outcome::NotModified => StatusCode::NOT_MODIFIED,
        Outcome::Partial { .. } => StatusCode::PARTIAL_CONTENT,
        Outcome::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
    };
    let mut b = HttpResponse::build(status);
    cache_headers(&mut b, &sw);
    b.insert_header((header::ETAG, obj.etag()))
        .insert_header((
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(obj.last_modified()),
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    Some(match outcome {
        Outcome::NotModified => b.finish(),
        Outcome::Unsatisfiable => b
            .insert_header((header::CONTENT_RANGE, format!("bytes */{}", obj.size)))
            .finish(),
        Outcome::Full if kind != Kind::Binary => {
            let body = text_body(kind, &obj);
            b.content_type(content_type(kind)).body(body)
        }
        Outcome::Partial { start, end } if kind != Kind::Binary => {
            let body = text_body(kind, &obj);
            b.content_type(content_type(kind))
                .insert_header((
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{}", obj.size),
                ))
                .body(body.slice(start as usize..end as usize + 1))
        }
        Outcome::Full => {
            b.content_type("application/octet-stream");
            let len = obj.size;
            b.body(SizedStream::new(
                len,
                body_stream(obj.seed(), 0, len, sw.throttle),
            ))
        }
        Outcome::Partial { start, end } => {
            b.content_type("application/octet-stream").insert_header((
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", obj.size),
            ));
            b.body(SizedStream::new(
                end - start + 1,
                body_stream(obj.seed(), start, end + 1, sw.throttle),
            ))
        }
    })
}

fn content_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Binary => "application/octet-stream",
        Kind::Text => "text/plain; charset=utf-8",
        Kind::Json => "application/json",
    }
}

/// The whole body of a text or JSON object (sizes are capped at
/// [`super::text::MAX_TEXT_SIZE`]).
fn text_body(kind: Kind, obj: &super::object::Object) -> Bytes {
    let n = obj.size as usize;
    Bytes::from(match kind {
        Kind::Json => super::text::json(obj.seed(), n),
        _ => super::text::text(obj.seed(), n),
    })
}

fn cache_headers(b: &mut HttpResponseBuilder, sw: &Switches) {
    match &sw.cache_control {
        Some(cc) if cc.is_empty() || cc == "none" => {}
        Some(cc) => {
            b.insert_header((header::CACHE_CONTROL, cc.as_str()));
        }
        None => {
            b.insert_header((
                header::CACHE_CONTROL,
                format!("public, max-age={}", sw.max_age),
            ));
        }
    }
    if let Some(v) = &sw.cdn_cache_control {
        b.insert_header(("CDN-Cache-Control", v.as_str()));
    }
    if !sw.tags.is_empty() {
        b.insert_header(("Surrogate-Key", sw.tags.join(" ")));
    }
    if let Some(v) = &sw.vary {
        b.insert_header((header::VARY, v.as_str()));
    }
    if let Some(v) = &sw.set_cookie {
        b.insert_header((header::SET_COOKIE, v.as_str()));
    }
}

/// Body bytes `[start, end)` of the object with `seed`, in [`CHUNK`]-sized pieces, each
/// optionally preceded by a `throttle` pause.
fn body_stream(
    seed: u64,
    start: u64,
    end: u64,
    throttle: Option<Duration>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(start, move |pos| async move {
        if pos >= end {
            return None;
        }
        if let Some(t) = throttle {
            actix_web::rt::time::sleep(t).await;
        }
        let n = CHUNK.min(end - pos) as usize;
        let mut buf = vec![0u8; n];
        super::object::fill_body(seed, pos, &mut buf);
        Some((Ok(Bytes::from(buf)), pos + n as u64))
    })
}

/// A response whose body fails before its first byte: actix then drops the connection
/// without writing the response head, which is what a crashed origin looks like.
fn close_connection() -> HttpResponse {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "origin fail switch: close",
        ))
    });
    let mut r = HttpResponse::Ok().body(SizedStream::new(1, failing));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn get_control(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.control())
}

async fn post_control(state: State, body: web::Json<Control>) -> HttpResponse {
    HttpResponse::Ok().json(state.apply(&body))
}

async fn get_stats(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}

async fn reset_stats(state: State) -> HttpResponse {
    state.reset_stats();
    HttpResponse::Ok().json(state.stats())
}

async fn not_found(req: HttpRequest, state: State) -> HttpResponse {
    if !req.path().starts_with("/_") {
        state.count_request(req.path());
        state.count_status(404);
    }
    HttpResponse::NotFound().body("not found: try /obj/<size>/<id>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_parse_and_reject_bad_numbers() {
        let s = parse_switches("max_age=5&tag=a,b&tag=c&delay_ms=7&x=1").unwrap();
        assert_eq!(s.max_age, 5);
        assert_eq!(s.tags, ["a", "b", "c"]);
        assert_eq!(s.delay, Some(Duration::from_millis(7)));
        assert_eq!(parse_switches("").unwrap().max_age, 60);
        let s = parse_switches("cc=no-store&status=404").unwrap();
        assert_eq!(s.cache_control.as_deref(), Some("no-store"));
        assert_eq!(s.status, Some(StatusCode::NOT_FOUND));
        assert!(parse_switches("max_age=-1").is_err());
        assert!(parse_switches("status=99").is_err());
        assert!(parse_switches("status=abc").is_err());
        assert!(parse_switches("delay_ms=1.5").is_err());
    }
}
