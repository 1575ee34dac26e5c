//! The demo origin: an HTTP server whose objects are generated, not stored, so tests and
//! load scripts can ask for any size and count what reached the origin.
//!
//! Flow: [`handler`] (routes and query switches) → [`object`] (size, deterministic body,
//! validators, conditional/range decision) → response; [`latency`] draws delays; [`state`]
//! holds the fail switch, content version and counters.
//!
//! # Endpoints
//!
//! * `GET|HEAD /obj/<size>/<id>`: `<size>` bytes (`512`, `1k`, `4m`, up to `2g`), streamed in
//!   64 KiB chunks; the body is a pure function of (size, id, version). Headers:
//!   `Cache-Control: public, max-age=60`, a strong `ETag`, `Last-Modified`,
//!   `Accept-Ranges: bytes`. `If-None-Match` / `If-Modified-Since` → 304; one `Range` → 206
//!   (416 outside the body; several ranges → 200); `If-Range` honoured.
//!   Query switches: `max_age=N`, `cc=<whole Cache-Control>` (`cc=none` omits it),
//!   `cdn_cc=<CDN-Cache-Control>`, `tag=a,b` (→ `Surrogate-Key: a b`), `vary=<header>`,
//!   `set_cookie=<value>`, `status=N` (forced status with a short body), `delay_ms=N`
//!   (before the response head), `throttle_ms=N` (before every 64 KiB chunk). Other
//!   parameters are ignored (use them to make distinct URLs).
//! * `GET|HEAD /text/<size>/<id>` and `/json/<size>/<id>`: the same, but the body is
//!   compressible — English-like `text/plain; charset=utf-8`, or a valid `application/json`
//!   array of records padded to the size ([`text`]) — sent uncompressed (no
//!   `Content-Encoding`), at most 64 MiB. Same headers, switches, conditionals and ranges.
//! * `GET /_control` / `POST /_control` `{"fail": "503"|"close"|"hang"|null, "version": n,
//!   "latency_profile": bool}`: absent fields are left alone.
//! * `GET /_stats` → `{"total": n, "paths": {"/obj/1k/a": n}, "statuses": {"200": n}}`;
//!   `POST /_stats/reset`. Paths starting with `/_` are not counted.

pub mod handler;
pub mod latency;
pub mod object;
pub mod state;
pub mod text;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::{web, App, HttpServer};

pub use object::Object;
pub use state::{Control, FailMode, OriginState, Stats};

/// Build the actix server on `listener` (already bound) with `state`. `workers` = 0 means
/// actix's default (one per CPU).
pub fn server(
    listener: TcpListener,
    state: Arc<OriginState>,
    workers: usize,
    handle_signals: bool,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let mut srv =
        HttpServer::new(move || App::new().app_data(data.clone()).configure(handler::routes))
            .listen(listener)?
            .shutdown_timeout(5);
    if workers > 0 {
        srv = srv.workers(workers);
    }
    if !handle_signals {
        srv = srv.disable_signals();
    }
    Ok(srv.run())
}

/// An origin running on its own thread (in-process, for tests and the `fleet` binary).
/// Dropping it stops the server.
#[derive(Debug)]
pub struct OriginHandle {
    addr: SocketAddr,
    state: Arc<OriginState>,
    server: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl OriginHandle {
    /// Bind `addr` (port 0 is fine) and start serving with 2 workers.
    pub fn start(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(
            TcpListener::bind(addr)?,
            Arc::new(OriginState::default()),
            2,
        )
    }

    /// Serve on `listener` with `state` on a new thread.
    pub fn start_with(
        listener: TcpListener,
        state: Arc<OriginState>,
        workers: usize,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("demo-origin".into())
            .spawn(move || {
                let sys = actix_rt::System::new();
                sys.block_on(async move {
                    match server(listener, st, workers, false) {
                        Ok(srv) => {
                            let _ = tx.send(Ok(srv.handle()));
                            let _ = srv.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let server = rx
            .recv()
            .map_err(|_| std::io::Error::other("origin thread exited before starting"))??;
        Ok(Self {
            addr,
            state,
            server,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The live state: flip the fail switch, change the version, read counters.
    pub fn state(&self) -> &Arc<OriginState> {
        &self.state
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        // `stop` sends the command eagerly; the returned future only awaits completion.
        drop(self.server.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
