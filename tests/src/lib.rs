//! The CDN's test bench: everything needed to run the real binaries together on loopback.
//!
//! * [`origin`]: the demo origin (generated objects, fail switch, request counters), used
//!   in-process by tests and the fleet, and as the `demo-origin` binary by load scripts.
//! * [`harness`]: start real binaries, read their ports, poll with deadlines, DNS and HTTP
//!   clients.
//! * [`fleet`]: origin + routers + edges on loopback, wired by generated configs (the tests'
//!   and the README's local fleet).
#![forbid(unsafe_code)]

pub mod fleet;
pub mod harness;
pub mod origin;
