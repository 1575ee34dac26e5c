//! Points of presence (`[cluster]`): the edges of one region share their caches, and hosts
//! may fill through a shield region (tiered caching). Flow 4 in ARCHITECTURE.md.
//!
//! * [`ring`]: the owner of a key (weighted rendezvous hashing, bounded load; pure).
//! * [`route`]: where a fill goes — peers, shield members, origin (pure).
//! * [`popular`]: a count-min sketch: a member keeps a copy of a key it does not own once it
//!   has missed it `cluster.replicate_after` times.
//! * The fill itself is [`crate::upstream`] (the one hook in the miss path, called by
//!   `lead.rs` and `pass.rs` in place of `Origins::send`): it tries the route's targets over
//!   HTTP/1.1 keep-alive, then the origin; a peer answers like an origin, so the rest of the
//!   pipeline is unchanged. This module only decides and probes; it depends on no request
//!   step.
//! * [`answer`]: what an owner adds to its answers to a peer (tags, `Surrogate-Control`).
//! * [`probe`]: health and load of every member (`GET /healthz`, `CDN-Pop-Load`).
//!
//! # Wire
//!
//! * `CDN-Hop: peer; key=<cluster.secret>` (or `shield; …`) on peer and shield requests. Only
//!   a request whose key matches (constant-time compare) is treated as one: it skips the
//!   host's tenant rules, HTTPS redirect and compression, is never sent to a peer again
//!   (`shield` requests go to the origin), and its answer carries the object's purge tags. The
//!   header is removed from every origin request (`Origins::send`).
//! * `CDN-Loop: <edge id>` is added on every hop as on origin requests (a loop → 508).
//! * `CDN-Pop-Load: <requests/s>` on `GET /healthz` (the client listener's, for a `Host` the
//!   edge does not serve): the member's load for bounded load (finite, capped at 10⁹).

pub mod answer;
pub mod popular;
pub mod probe;
pub mod ring;
pub mod route;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use cdn_shared::config::cluster::{ClusterMember, ClusterSection};
use cdn_shared::config::edge::EdgeConfig;

pub use route::Hop;

use ring::Node;

/// The hop marker.
pub const CDN_HOP: HeaderName = HeaderName::from_static("cdn-hop");
/// A member's load on `/healthz`.
pub const CDN_POP_LOAD: HeaderName = HeaderName::from_static("cdn-pop-load");
/// Largest load believed from a peer.
pub const MAX_LOAD: f64 = 1e9;

/// One member (of this PoP or of a shield region) and what the probes know of it.
#[derive(Debug)]
pub struct Member {
    /// Its edge id.
    pub id: String,
    /// Its client listener.
    pub address: SocketAddr,
    /// Rendezvous weight.
    pub weight: f64,
    id_hash: u64,
    up: AtomicBool,
    oks: AtomicU32,
    fails: AtomicU32,
    load_bits: AtomicU64,
    /// A request to it had no head in the whole patience while its probes passed
    /// (`upstream.rs`): no more patience until it answers a request again.
    stalled: AtomicBool,
}

impl Member {
    fn new(m: &ClusterMember) -> Self {
        Member {
            id: m.id.clone(),
            address: m.address,
            weight: m.weight,
            id_hash: ring::hash(m.id.as_bytes()),
            // Unknown is usable (DESIGN: never treat "no data yet" as down).
            up: AtomicBool::new(true),
            oks: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            load_bits: AtomicU64::new(0f64.to_bits()),
            stalled: AtomicBool::new(false),
        }
    }

    /// Whether its last request that waited the whole patience got no head, and nothing
    /// answered since (its probes may pass while its request handling is wedged).
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// A request to it got a head (`false`), or none in the whole patience (`true`).
    pub fn set_stalled(&self, stalled: bool) {
        if self.is_stalled() != stalled {
            self.stalled.store(stalled, Ordering::Relaxed);
        }
    }

    /// Usable now?
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Last load heard (requests/s).
    pub fn load(&self) -> f64 {
        f64::from_bits(self.load_bits.load(Ordering::Relaxed))
    }

    pub(crate) fn set_load(&self, l: f64) {
        let l = if l.is_finite() {
            l.clamp(0.0, MAX_LOAD)
        } else {
            0.0
        };
        self.load_bits.store(l.to_bits(), Ordering::Relaxed);
    }

    /// Apply one probe result (`rise`/`fall` in a row), returning whether `up` changed.
    pub fn probed(&self, ok: bool, load: Option<f64>, rise: u32, fall: u32) -> bool {
        if let Some(l) = load {
            self.set_load(l);
        }
        let (up, oks, fails) = health_step(
            self.is_up(),
            self.oks.load(Ordering::Relaxed),
            self.fails.load(Ordering::Relaxed),
            ok,
            rise,
            fall,
        );
        self.oks.store(oks, Ordering::Relaxed);
        self.fails.store(fails, Ordering::Relaxed);
        self.up.swap(up, Ordering::Relaxed) != up
    }

    /// A fill to it failed to connect or timed out: down at once (the probes bring it back).
    pub fn failed(&self) {
        self.oks.store(0, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
    }

    fn node(&self) -> Node {
        Node {
            id_hash: self.id_hash,
            weight: self.weight,
            up: self.is_up(),
            load: self.load(),
        }
    }
}

/// Rise/fall (pure): the next `(up, oks in a row, fails in a row)` after a probe.
pub fn health_step(
    up: bool,
    oks: u32,
    fails: u32,
    ok: bool,
    rise: u32,
    fall: u32,
) -> (bool, u32, u32) {
    if ok {
        let oks = oks.saturating_add(1);
        (up || oks >= rise, oks, 0)
    } else {
        let fails = fails.saturating_add(1);
        (up && fails < fall, 0, fails)
    }
}

/// A shield region.
#[derive(Debug)]
pub struct Region {
    /// Its name.
    pub name: String,
    /// Its members.
    pub members: Vec<Member>,
}

/// This edge's PoP, the shield regions and the knobs of `[cluster]`.
#[derive(Debug)]
pub struct Pop {
    /// Index of this edge in `members`.
    pub me: usize,
    /// This PoP's members, this edge included.
    pub members: Vec<Member>,
    /// Other regions (shield candidates).
    pub regions: Vec<Region>,
    /// Per `[[hosts]]` index: its shield regions (indices into `regions`), empty when none
    /// or when this edge's region is one of them.
    shields: Vec<Vec<usize>>,
    /// Misses of keys this edge does not own.
    pub popularity: popular::Popularity,
    /// The section.
    pub cfg: ClusterSection,
    /// `peer; key=…`, `shield; key=…`.
    peer_marker: HeaderValue,
    shield_marker: HeaderValue,
    /// This edge's `CDN-Loop` token.
    pub cdn_loop: HeaderValue,
}

/// Why `[cluster]` could not be turned into a PoP.
#[derive(Debug, thiserror::Error)]
#[error("cluster: {0}")]
pub struct PopError(String);

impl Pop {
    /// Build from the config (`None` without `[cluster]`). This edge is added with its first
    /// `http.listen` address when `cluster.members` does not list it.
    pub fn new(config: &EdgeConfig) -> Result<Option<Pop>, PopError> {
        let Some(c) = &config.cluster else {
            return Ok(None);
        };
        let mut members: Vec<Member> = c.members.iter().map(Member::new).collect();
        let me = match members.iter().position(|m| m.id == config.edge.id) {
            Some(i) => i,
            None => {
                let address = *config
                    .http
                    .listen
                    .first()
                    .ok_or_else(|| PopError("http.listen is empty".into()))?;
                members.push(Member::new(&ClusterMember {
                    id: config.edge.id.clone(),
                    address,
                    weight: 1.0,
                }));
                members.len() - 1
            }
        };
        let regions: Vec<Region> = c
            .regions
            .iter()
            .map(|r| Region {
                name: r.name.clone(),
                members: r.members.iter().map(Member::new).collect(),
            })
            .collect();
        let own = &config.edge.region;
        let shields = config
            .hosts
            .iter()
            .map(|h| {
                let Some(rule) = c
                    .shields
                    .iter()
                    .find(|s| s.host.eq_ignore_ascii_case(&h.name))
                else {
                    return Vec::new();
                };
                if rule.regions.iter().any(|r| r.eq_ignore_ascii_case(own)) {
                    return Vec::new();
                }
                rule.regions
                    .iter()
                    .filter_map(|r| regions.iter().position(|x| x.name.eq_ignore_ascii_case(r)))
                    .collect()
            })
            .collect();
        let marker = |hop: Hop| {
            HeaderValue::from_str(&format!("{}; key={}", hop.as_str(), c.secret))
                .map_err(|_| PopError("cluster.secret is not a valid header value".into()))
        };
        Ok(Some(Pop {
            me,
            peer_marker: marker(Hop::Peer)?,
            shield_marker: marker(Hop::Shield)?,
            members,
            regions,
            shields,
            popularity: popular::Popularity::new(c.popularity_window),
            cfg: c.clone(),
            cdn_loop: HeaderValue::from_str(&config.edge.id)
                .map_err(|_| PopError("edge.id is not a valid header value".into()))?,
        }))
    }

    /// The authenticated hop of a request: `CDN-Hop: peer|shield; key=<secret>`.
    pub fn hop_of(&self, h: &HeaderMap) -> Option<Hop> {
        parse_hop(h.get(CDN_HOP)?.as_bytes(), self.cfg.secret.as_bytes())
    }

    /// The marker to send to a `hop`.
    pub fn marker(&self, hop: Hop) -> HeaderValue {
        match hop {
            Hop::Peer => self.peer_marker.clone(),
            Hop::Shield => self.shield_marker.clone(),
        }
    }

    /// The route of a fill for `key_hash` of host `route_index`.
    pub fn route(&self, key_hash: u64, hop: Option<Hop>, route_index: usize) -> route::Route {
        let mut pop: Vec<Node> = self.members.iter().map(Member::node).collect();
        pop[self.me].up = true;
        let shields: Vec<(usize, Vec<Node>)> = self
            .shields
            .get(route_index)
            .map(|s| {
                s.iter()
                    .map(|&r| {
                        (
                            r,
                            self.regions[r].members.iter().map(Member::node).collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let bound = ring::Bound {
            epsilon: self.cfg.load_epsilon,
            floor: self.cfg.load_floor,
        };
        route::route(key_hash, hop, self.me, &pop, &shields, bound)
    }

    /// The member a target names.
    pub fn member(&self, t: route::Target) -> &Member {
        match t {
            route::Target::Peer(i) => &self.members[i],
            route::Target::Shield(r, i) => &self.regions[r].members[i],
        }
    }

    /// Every member other than this edge (the probes' list).
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != self.me)
            .map(|(_, m)| m)
            .chain(self.regions.iter().flat_map(|r| r.members.iter()))
    }

    /// This edge's own entry.
    pub fn myself(&self) -> &Member {
        &self.members[self.me]
    }

    /// Peer timeouts.
    pub fn timeouts(&self) -> (Duration, Duration) {
        (self.cfg.connect_timeout, self.cfg.first_byte_timeout)
    }
}

/// `peer; key=…` / `shield; key=…` with the right key → the hop (pure; the key compared in
/// constant time).
pub fn parse_hop(v: &[u8], secret: &[u8]) -> Option<Hop> {
    use subtle::ConstantTimeEq;
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split(';').map(str::trim);
    let hop = match parts.next()? {
        "peer" => Hop::Peer,
        "shield" => Hop::Shield,
        _ => return None,
    };
    let key = parts.find_map(|p| p.strip_prefix("key="))?;
    bool::from(key.as_bytes().ct_eq(secret)).then_some(hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_markers_need_the_key() {
        let k = b"0123456789abcdef";
        assert_eq!(parse_hop(b"peer; key=0123456789abcdef", k), Some(Hop::Peer));
        assert_eq!(
            parse_hop(b"shield;key=0123456789abcdef", k),
            Some(Hop::Shield)
        );
        assert_eq!(parse_hop(b"peer", k), None);
        assert_eq!(parse_hop(b"peer; key=0123456789abcdeX", k), None);
        assert_eq!(parse_hop(b"peer; key=", k), None);
        assert_eq!(parse_hop(b"other; key=0123456789abcdef", k), None);
        assert_eq!(parse_hop(b"\xff", k), None);
    }

    #[test]
    fn rise_and_fall() {
        // Up: stays up until `fall` failures in a row.
        assert_eq!(health_step(true, 5, 0, false, 2, 2), (true, 0, 1));
        assert_eq!(health_step(true, 0, 1, false, 2, 2), (false, 0, 2));
        // An ok in between resets the count.
        assert_eq!(health_step(true, 0, 1, true, 2, 2), (true, 1, 0));
        // Down: up after `rise` oks in a row.
        assert_eq!(health_step(false, 0, 3, true, 2, 2), (false, 1, 0));
        assert_eq!(health_step(false, 1, 0, true, 2, 2), (true, 2, 0));
        assert_eq!(health_step(false, 1, 0, false, 2, 2), (false, 0, 1));
        assert_eq!(
            health_step(true, u32::MAX, 0, true, 2, 2),
            (true, u32::MAX, 0)
        );
    }

    #[test]
    fn loads_from_peers_are_capped() {
        let m = Member::new(&ClusterMember {
            id: "a".into(),
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            weight: 1.0,
        });
        m.probed(true, Some(f64::INFINITY), 1, 1);
        assert_eq!(m.load(), 0.0);
        m.probed(true, Some(1e30), 1, 1);
        assert_eq!(m.load(), MAX_LOAD);
        m.probed(true, Some(-5.0), 1, 1);
        assert_eq!(m.load(), 0.0);
        m.failed();
        assert!(!m.is_up());
    }
}
