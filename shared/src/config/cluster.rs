//! `[cluster]`: the edge's point of presence (PoP) and the shield PoPs of tiered caching.
//!
//! Edges of one region form a PoP. Each cache key has one owner among the PoP's healthy
//! members (weighted rendezvous hashing, with bounded load); a member that misses a key it
//! does not own fetches it from the owner (a *peer fill*), which fills from the origin — or,
//! when the host has a shield region, from the shield PoP — once for the whole PoP.
//!
//! ```toml
//! [cluster]
//! secret = "a long random string shared by the fleet"
//! members = [
//!   { id = "eu-1", address = "127.0.1.1:8081" },
//!   { id = "eu-2", address = "127.0.1.2:8081", weight = 2.0 },
//! ]
//! [[cluster.regions]]              # other PoPs that can be shields
//! name = "us"
//! members = [{ id = "us-1", address = "127.0.2.1:8081" }]
//! [[cluster.shields]]
//! host = "www.example.com"
//! regions = ["us"]                 # ordered: the first healthy region is used
//! ```
//!
//! Members are probed with `GET /healthz` on their client `address` (every
//! `probe_interval`, `probe_timeout` each): `fall` failures in a row mark a member down,
//! `rise` successes up again; a connect error or timeout on a peer fill marks it down at once.
//! The probe answer carries the member's load (`CDN-Pop-Load`, requests/s) for bounded load.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::common::{require_dns_name, require_ident, require_positive, require_unique};
use super::ConfigError;

/// `[cluster]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// The members of this edge's PoP, this edge included (matched by `edge.id`; it is added
    /// with the first `http.listen` address when missing). Required, at least one.
    pub members: Vec<ClusterMember>,
    /// Other PoPs, by region name, that hosts may use as shields (`[[cluster.shields]]`).
    pub regions: Vec<ClusterRegion>,
    /// Per host, the ordered shield regions.
    pub shields: Vec<ShieldRule>,
    /// Shared by every edge of the fleet: peer and shield requests carry it
    /// (`CDN-Hop: peer; key=…`), and only requests carrying it skip the host's tenant rules
    /// and are never forwarded again. At least 16 characters. Required.
    pub secret: String,
    /// How often each member (and shield member) is probed. Default `1s`.
    #[serde(with = "crate::config::common::duration")]
    pub probe_interval: Duration,
    /// Time allowed for one probe. Default `500ms`.
    #[serde(with = "crate::config::common::duration")]
    pub probe_timeout: Duration,
    /// Failed probes in a row that mark a member down. Default 2.
    pub fall: u32,
    /// Successful probes in a row that mark a down member up. Default 2.
    pub rise: u32,
    /// Connect timeout of a peer or shield fill. Default `300ms`.
    #[serde(with = "crate::config::common::duration")]
    pub connect_timeout: Duration,
    /// Time to the response head of a peer or shield fill. Past it the fill keeps waiting
    /// only while the member's probes pass (it is most likely filling the key from a slow
    /// origin), at most the host's `first_byte_timeout` more, and goes to the next member,
    /// then the origin, once they mark it down. A member that sent no head in all of that
    /// time gets no more patience until it answers a request again. Default `5s`.
    #[serde(with = "crate::config::common::duration")]
    pub first_byte_timeout: Duration,
    /// A member keeps its own copy of an object it does not own once it has missed it this
    /// many times (a count-min sketch, halved every `popularity_window` misses). 1 = always
    /// keep a copy. Default 2.
    pub replicate_after: u32,
    /// Misses counted before the popularity counts are halved. Default 100000.
    pub popularity_window: u32,
    /// Bounded load (ε): an owner whose load is above (1 + ε) × the PoP average gets its keys
    /// placed on the next member. Default 0.25; 0 < ε ≤ 10.
    pub load_epsilon: f64,
    /// Below this load (requests/s, per unit of weight) a member is never considered above
    /// its bound: at low rates the members' load figures are noise (probes included), and
    /// acting on noise would make members disagree about owners. Default 100; ≥ 0.
    pub load_floor: f64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            regions: Vec::new(),
            shields: Vec::new(),
            secret: String::new(),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            fall: 2,
            rise: 2,
            connect_timeout: Duration::from_millis(300),
            first_byte_timeout: Duration::from_secs(5),
            replicate_after: 2,
            popularity_window: 100_000,
            load_epsilon: 0.25,
            load_floor: 100.0,
        }
    }
}

/// One edge of a PoP.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterMember {
    /// Its `edge.id` (required).
    pub id: String,
    /// Its plain HTTP client listener, `ip:port` (required).
    pub address: SocketAddr,
    /// Relative share of keys (rendezvous weight). Default 1; 0 < weight ≤ 1000.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// `[[cluster.regions]]`: another PoP.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterRegion {
    /// Region name (as the other edges' `edge.region`).
    pub name: String,
    /// Its members.
    pub members: Vec<ClusterMember>,
}

/// `[[cluster.shields]]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShieldRule {
    /// A `[[hosts]]` name.
    pub host: String,
    /// Shield regions in order of preference (this edge's own region or one of
    /// `[[cluster.regions]]`). Edges of a listed region fill from the origin.
    pub regions: Vec<String>,
}

fn check_members(key: &str, members: &[ClusterMember]) -> Result<(), ConfigError> {
    for (i, m) in members.iter().enumerate() {
        require_ident(&format!("{key}[{i}].id"), &m.id)?;
        if !(m.weight.is_finite() && m.weight > 0.0 && m.weight <= 1000.0) {
            return Err(ConfigError::new(
                format!("{key}[{i}].weight"),
                "must be in (0, 1000]",
            ));
        }
    }
    require_unique(members.iter().map(|m| m.id.as_str()), |i| {
        format!("{key}[{i}].id")
    })
}

impl ClusterSection {
    /// Check the section; `region` is this edge's region, `hosts` the configured host names.
    /// Keys are reported as `cluster.<field>`.
    pub fn validate(&self, region: &str, hosts: &[&str]) -> Result<(), ConfigError> {
        if self.members.is_empty() {
            return Err(ConfigError::new(
                "cluster.members",
                "must list this PoP's members (this edge included)",
            ));
        }
        check_members("cluster.members", &self.members)?;
        if self.secret.chars().count() < 16 {
            return Err(ConfigError::new(
                "cluster.secret",
                "must be at least 16 characters",
            ));
        }
        // Sent as `CDN-Hop: peer; key=<secret>`: `;`, `,` and `=` would cut the field apart.
        if !self
            .secret
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'='))
        {
            return Err(ConfigError::new(
                "cluster.secret",
                "must be printable ASCII without spaces, `;`, `,` or `=`",
            ));
        }
        for (k, d) in [
            ("cluster.probe_interval", self.probe_interval),
            ("cluster.probe_timeout", self.probe_timeout),
            ("cluster.connect_timeout", self.connect_timeout),
            ("cluster.first_byte_timeout", self.first_byte_timeout),
        ] {
            require_positive(k, d)?;
        }
        if self.fall == 0 {
            return Err(ConfigError::new("cluster.fall", "must be at least 1"));
        }
        if self.rise == 0 {
            return Err(ConfigError::new("cluster.rise", "must be at least 1"));
        }
        if self.replicate_after == 0 {
            return Err(ConfigError::new(
                "cluster.replicate_after",
                "must be at least 1",
            ));
        }
        if self.popularity_window < 16 {
            return Err(ConfigError::new(
                "cluster.popularity_window",
                "must be at least 16",
            ));
        }
        if !(self.load_epsilon.is_finite() && self.load_epsilon > 0.0 && self.load_epsilon <= 10.0)
        {
            return Err(ConfigError::new(
                "cluster.load_epsilon",
                "must be in (0, 10]",
            ));
        }
        if !(self.load_floor.is_finite() && self.load_floor >= 0.0) {
            return Err(ConfigError::new(
                "cluster.load_floor",
                "must be a number ≥ 0",
            ));
        }
        for (i, r) in self.regions.iter().enumerate() {
            let key = format!("cluster.regions[{i}]");
            require_ident(&format!("{key}.name"), &r.name)?;
            if r.name.eq_ignore_ascii_case(region) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    "is this edge's own region (its members are `cluster.members`)",
                ));
            }
            if r.members.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.members"),
                    "must not be empty",
                ));
            }
            check_members(&format!("{key}.members"), &r.members)?;
        }
        require_unique(self.regions.iter().map(|r| r.name.as_str()), |i| {
            format!("cluster.regions[{i}].name")
        })?;
        for (i, s) in self.shields.iter().enumerate() {
            let key = format!("cluster.shields[{i}]");
            require_dns_name(&format!("{key}.host"), &s.host, false)?;
            if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&s.host)) {
                return Err(ConfigError::new(
                    format!("{key}.host"),
                    format!("`{}` is not a [[hosts]] name", s.host),
                ));
            }
            if s.regions.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.regions"),
                    "must not be empty",
                ));
            }
            for (j, r) in s.regions.iter().enumerate() {
                let known = r.eq_ignore_ascii_case(region)
                    || self.regions.iter().any(|x| x.name.eq_ignore_ascii_case(r));
                if !known {
                    return Err(ConfigError::new(
                        format!("{key}.regions[{j}]"),
                        format!("`{r}` is neither this edge's region nor in [[cluster.regions]]"),
                    ));
                }
            }
        }
        require_unique(self.shields.iter().map(|s| s.host.as_str()), |i| {
            format!("cluster.shields[{i}].host")
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, port: u16) -> ClusterMember {
        ClusterMember {
            id: id.into(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1.0,
        }
    }

    fn good() -> ClusterSection {
        ClusterSection {
            members: vec![member("a", 1), member("b", 2)],
            regions: vec![ClusterRegion {
                name: "us".into(),
                members: vec![member("u", 3)],
            }],
            shields: vec![ShieldRule {
                host: "www.example.com".into(),
                regions: vec!["us".into()],
            }],
            secret: "0123456789abcdef".into(),
            ..ClusterSection::default()
        }
    }

    #[test]
    fn a_good_section_passes() {
        good().validate("eu", &["www.example.com"]).unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        type Edit = Box<dyn Fn(&mut ClusterSection)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|c| c.members.clear()), "cluster.members"),
            (Box::new(|c| c.secret = "short".into()), "cluster.secret"),
            (
                Box::new(|c| c.secret = "0123456789 abcdef".into()),
                "cluster.secret",
            ),
            (
                Box::new(|c| c.secret = "abcdefgh;ijklmnop123".into()),
                "cluster.secret",
            ),
            (
                Box::new(|c| c.secret = "abcdefgh=ijklmnop123".into()),
                "cluster.secret",
            ),
            (
                Box::new(|c| c.members[1].weight = 0.0),
                "cluster.members[1].weight",
            ),
            (
                Box::new(|c| c.members[1].id = "a".into()),
                "cluster.members[1].id",
            ),
            (
                Box::new(|c| c.members[0].id = "bad id".into()),
                "cluster.members[0].id",
            ),
            (
                Box::new(|c| c.probe_interval = Duration::ZERO),
                "cluster.probe_interval",
            ),
            (Box::new(|c| c.fall = 0), "cluster.fall"),
            (Box::new(|c| c.rise = 0), "cluster.rise"),
            (
                Box::new(|c| c.replicate_after = 0),
                "cluster.replicate_after",
            ),
            (
                Box::new(|c| c.popularity_window = 1),
                "cluster.popularity_window",
            ),
            (Box::new(|c| c.load_epsilon = 0.0), "cluster.load_epsilon"),
            (Box::new(|c| c.load_floor = -1.0), "cluster.load_floor"),
            (
                Box::new(|c| c.load_epsilon = f64::NAN),
                "cluster.load_epsilon",
            ),
            (
                Box::new(|c| c.regions[0].name = "eu".into()),
                "cluster.regions[0].name",
            ),
            (
                Box::new(|c| c.regions[0].members.clear()),
                "cluster.regions[0].members",
            ),
            (
                Box::new(|c| c.shields[0].host = "other.example.com".into()),
                "cluster.shields[0].host",
            ),
            (
                Box::new(|c| c.shields[0].regions = vec!["mars".into()]),
                "cluster.shields[0].regions[0]",
            ),
            (
                Box::new(|c| c.shields[0].regions.clear()),
                "cluster.shields[0].regions",
            ),
        ];
        for (edit, key) in cases {
            let mut c = good();
            edit(&mut c);
            assert_eq!(c.validate("eu", &["www.example.com"]).unwrap_err().key, key);
        }
    }
}
