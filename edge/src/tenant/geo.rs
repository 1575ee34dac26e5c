//! Geo rules: where a client is (the `[geo]` network map's `country=`, then the MaxMind
//! database, via the `cdn-geo` crate) and whether a host lets it in.
//!
//! Order of a decision: `allow_cidrs` (always in) → `deny_cidrs` (out) → country: in
//! `deny_countries` → out; `allow_countries` non-empty and the country not in it → out; an
//! unknown country follows `unknown`. Pure given the country.

use std::net::IpAddr;
use std::path::Path;

use cdn_geo::locate::{GeoDb, NetworkMap};
use cdn_shared::config::tenant::{EdgeGeoSection, GeoRules, UnknownCountry};
use ipnet::IpNet;

use crate::error::EdgeError;

/// Countries of client addresses.
#[derive(Debug, Default)]
pub struct Countries {
    map: Option<NetworkMap>,
    db: Option<GeoDb>,
}

impl Countries {
    /// Open `[geo]`'s files (errors name the key).
    pub fn open(cfg: &EdgeGeoSection) -> Result<Countries, EdgeError> {
        let map = match &cfg.network_map {
            None => None,
            Some(p) => {
                Some(load_map(p).map_err(|e| EdgeError::Config(format!("geo.network_map: {e}")))?)
            }
        };
        let db = match &cfg.database {
            None => None,
            Some(p) => {
                Some(GeoDb::open(p).map_err(|e| EdgeError::Config(format!("geo.database: {e}")))?)
            }
        };
        Ok(Countries { map, db })
    }

    /// From a parsed map and/or database (tests).
    pub fn new(map: Option<NetworkMap>, db: Option<GeoDb>) -> Countries {
        Countries { map, db }
    }

    /// The client's country: the network map's entry if it names one, else the database's.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        if let Some(c) = self.map.as_ref().and_then(|m| m.country_of(ip)) {
            return Some(c.to_string());
        }
        let db = self.db.as_ref()?;
        let found = db.lookup(ip).ok()?;
        found.hit.and_then(|h| h.country.map(str::to_string))
    }
}

fn load_map(p: &Path) -> Result<NetworkMap, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    NetworkMap::parse_countries(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// A host's compiled rules.
#[derive(Debug, Clone)]
pub struct GeoRule {
    allow_cidrs: Vec<IpNet>,
    deny_cidrs: Vec<IpNet>,
    allow_countries: Vec<String>,
    deny_countries: Vec<String>,
    unknown: UnknownCountry,
    /// 403 or 451.
    pub status: u16,
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoRefusal {
    /// In `deny_cidrs`.
    Cidr,
    /// Country denied (or not allowed).
    Country,
    /// No known country and `unknown = "deny"`.
    Unknown,
}

impl GeoRefusal {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GeoRefusal::Cidr => "geo_cidr",
            GeoRefusal::Country => "geo_country",
            GeoRefusal::Unknown => "geo_unknown",
        }
    }
}

impl GeoRule {
    /// Compile `[hosts.geo]`.
    pub fn new(cfg: &GeoRules) -> GeoRule {
        GeoRule {
            allow_cidrs: cfg.allow_cidrs.iter().map(|n| n.trunc()).collect(),
            deny_cidrs: cfg.deny_cidrs.iter().map(|n| n.trunc()).collect(),
            allow_countries: cfg.allow_countries.clone(),
            deny_countries: cfg.deny_countries.clone(),
            unknown: cfg.unknown,
            status: cfg.status,
        }
    }

    /// Whether country rules exist (so the lookup is needed).
    pub fn needs_country(&self) -> bool {
        !self.allow_countries.is_empty()
            || !self.deny_countries.is_empty()
            || self.unknown == UnknownCountry::Deny
    }

    /// Decide for `ip`, whose country `country` gives (called only when needed).
    pub fn check(
        &self,
        ip: IpAddr,
        country: impl FnOnce() -> Option<String>,
    ) -> Result<(), GeoRefusal> {
        let ip = ip.to_canonical();
        if self.allow_cidrs.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        if self.deny_cidrs.iter().any(|n| n.contains(&ip)) {
            return Err(GeoRefusal::Cidr);
        }
        if !self.needs_country() {
            return Ok(());
        }
        match country() {
            Some(c) => {
                if self.deny_countries.contains(&c)
                    || (!self.allow_countries.is_empty() && !self.allow_countries.contains(&c))
                {
                    Err(GeoRefusal::Country)
                } else {
                    Ok(())
                }
            }
            None if self.unknown == UnknownCountry::Deny => Err(GeoRefusal::Unknown),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> GeoRule {
        GeoRule::new(&toml::from_str::<GeoRules>(toml_text).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_list_by_country_and_cidr() {
        let r = rule(
            r#"deny_countries = ["KP"]
deny_cidrs = ["198.51.100.0/24"]
allow_cidrs = ["198.51.100.7/32"]"#,
        );
        assert_eq!(
            r.check(ip("10.0.0.1"), || Some("KP".into())),
            Err(GeoRefusal::Country)
        );
        assert_eq!(r.check(ip("10.0.0.1"), || Some("DE".into())), Ok(()));
        assert_eq!(r.check(ip("10.0.0.1"), || None), Ok(()));
        assert_eq!(
            r.check(ip("198.51.100.9"), || Some("DE".into())),
            Err(GeoRefusal::Cidr)
        );
        // An allowed CIDR wins over everything, even a denied country.
        assert_eq!(r.check(ip("198.51.100.7"), || Some("KP".into())), Ok(()));
        assert_eq!(
            r.check(ip("::ffff:198.51.100.9"), || None),
            Err(GeoRefusal::Cidr)
        );
    }

    #[test]
    fn allow_list_and_unknown_policy() {
        let r = rule(
            r#"allow_countries = ["DE", "FR"]
unknown = "deny"
status = 451"#,
        );
        assert_eq!(r.status, 451);
        assert_eq!(r.check(ip("10.0.0.1"), || Some("FR".into())), Ok(()));
        assert_eq!(
            r.check(ip("10.0.0.1"), || Some("US".into())),
            Err(GeoRefusal::Country)
        );
        assert_eq!(r.check(ip("10.0.0.1"), || None), Err(GeoRefusal::Unknown));
        let open = rule(r#"deny_cidrs = ["10.0.0.0/8"]"#);
        assert!(!open.needs_country());
        assert_eq!(
            open.check(ip("11.0.0.1"), || panic!("no lookup needed")),
            Ok(())
        );
    }

    #[test]
    fn countries_come_from_the_map_first() {
        let map =
            NetworkMap::parse_countries("127.0.99.0/24 kp country=KP\n127.0.0.0/8 0,0").unwrap();
        let c = Countries::new(Some(map), None);
        assert_eq!(c.country(ip("127.0.99.3")).as_deref(), Some("KP"));
        assert_eq!(c.country(ip("127.0.0.1")), None);
        assert_eq!(c.country(ip("::ffff:127.0.99.3")).as_deref(), Some("KP"));
    }
}
