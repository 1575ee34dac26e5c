//! Running the real binaries in tests.
//!
//! * [`binary`](mod@binary): locate (or build) `dns-router`, `edge`, `demo-origin`.
//! * [`process`]: spawn one, capture its log, read its `listening`/`ready` lines, signal it,
//!   kill it and print its log on drop.
//! * [`patience`](mod@patience): `eventually`/`wait_until` polling with deadlines scaled by
//!   `CDN_TEST_PATIENCE`, `always` for "keeps holding".
//! * [`dns`]: UDP/TCP queries with EDNS Client Subnet.
//! * [`nats`]: a `nats-server` with JetStream on a free port (fleet-bus tests).
//! * [`http`]: requests to a socket address with any `Host` (curl `--resolve`).
//! * [`certs`]: a demo CA and the leaf certificates it signs (rcgen), as PEM files.
//! * [`tls`]: a rustls client: SNI, ALPN and version chosen, the presented certificate,
//!   HTTP/1.1 requests on a keep-alive connection.

pub mod binary;
pub mod certs;
pub mod dns;
pub mod http;
pub mod nats;
pub mod patience;
pub mod process;
pub mod tls;

pub use binary::binary;
pub use patience::{
    always, eventually, eventually_every, patience, scaled, wait_until, wait_until_async,
};
pub use process::{signal_pid, Process, Signal};
