//! Step 2 of a query: find what the zones say about the name. Zones are built once per config
//! from `[[zones]]` (SOA, NS, static records parsed with hickory-proto and kept as encoded
//! RDATA) and the names of `[[services]]`; [`Zones::lookup`] walks them with RFC 1034 §4.3.2
//! semantics: refused outside our zones, referrals below delegations, exact matches, CNAMEs,
//! wildcards (RFC 4592: only when no closer name exists), empty non-terminals (NODATA) and
//! NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{CNAME, MX, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use cdn_shared::config::router::{RouterConfig, ZoneConfig};
use cdn_shared::config::ConfigError;

use crate::wire::{class, label_starts, name_to_wire, rtype, wire_to_string};

/// One RRset: a type, one TTL, and the encoded RDATA of each record.
#[derive(Debug, Clone)]
pub struct RrSet {
    /// RR type.
    pub rtype: u16,
    /// TTL shared by every record of the set (RFC 2181 §5.2).
    pub ttl: u32,
    /// Encoded RDATA (names uncompressed) per record.
    pub rdata: Vec<Vec<u8>>,
    /// Glue for NS sets: A/AAAA records of in-zone targets, owners written in full.
    pub glue: Vec<u8>,
    /// Number of records in `glue`.
    pub glue_count: u16,
    /// Whether `glue` holds addresses of a name server at or below the owner (in-domain glue:
    /// a referral must carry it whole or be truncated, RFC 9471).
    pub glue_in_domain: bool,
    /// Target of a CNAME, lowercased wire form.
    pub cname_target: Option<Vec<u8>>,
}

/// A name in a zone: its RRsets, whether a service answers it, whether it is a delegation.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Static RRsets at this name.
    pub rrsets: Vec<RrSet>,
    /// Index into the router's services when this name (or wildcard) is a CDN hostname.
    pub service: Option<usize>,
    /// An NS RRset below the apex: everything at and under this name is delegated.
    pub cut: bool,
    /// Unique among the nodes of all zones of a build (response-rate limiting keys referrals
    /// and wildcard answers by it).
    pub id: u32,
}

impl Node {
    /// The RRset of `rtype`, if any.
    pub fn rrset(&self, rtype: u16) -> Option<&RrSet> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    /// Whether the node has any data (else it is an empty non-terminal).
    pub fn has_data(&self) -> bool {
        !self.rrsets.is_empty() || self.service.is_some()
    }
}

/// One zone we are authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Index among the zones of the build (response-rate limiting keys NODATA by it).
    pub id: u32,
    /// Apex in presentation form, lowercase, with trailing dot.
    pub name: String,
    /// Apex in lowercase wire form.
    pub apex: Vec<u8>,
    /// Every name in the zone (empty non-terminals included), keyed by lowercase wire name
    /// (foldhash, seeded per process: looked up for every query).
    pub nodes: HashMap<Box<[u8]>, Node, foldhash::fast::RandomState>,
    /// The SOA record for negative answers (RFC 2308 §3): owner written in full, TTL =
    /// min(SOA TTL, MINIMUM).
    pub negative_soa: Vec<u8>,
    /// Whether any delegation exists (skips the referral walk when not).
    has_cuts: bool,
}

/// What the zones say about a (name, type).
#[derive(Debug)]
pub enum Lookup<'z> {
    /// Not in any of our zones: REFUSED.
    Refused,
    /// The name (or the wildcard that covers it) exists.
    Found {
        /// The zone.
        zone: &'z Zone,
        /// The node answering (for a wildcard match, the `*` node).
        node: &'z Node,
        /// Whether `node` is a wildcard that synthesises the name (RFC 4592).
        wildcard: bool,
    },
    /// The name does not exist: NXDOMAIN with the SOA.
    NxDomain {
        /// The zone.
        zone: &'z Zone,
    },
    /// The name is at or below a delegation: referral (no AA).
    Referral {
        /// The zone.
        zone: &'z Zone,
        /// Lowercase wire name of the delegation point.
        cut: &'z [u8],
        /// Its node.
        node: &'z Node,
        /// Its NS RRset.
        ns: &'z RrSet,
    },
}

/// All zones of a config.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

fn zone_err(key: String, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(key, msg)
}

/// Encode RDATA with names written in full (the blobs are copied into messages at any offset).
fn encode_rdata(rdata: &RData) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(32);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut enc).map_err(|e| e.to_string())?;
    Ok(buf)
}

fn name_wire(name: &Name) -> Vec<u8> {
    name_to_wire(&name.to_ascii()).unwrap_or_else(|| vec![0])
}

/// Parse a name in record data: absolute with a trailing dot, else relative to `origin`.
fn parse_name(s: &str, origin: &Name) -> Result<Name, String> {
    if s == "@" {
        return Ok(origin.clone());
    }
    Name::parse(s, Some(origin)).map_err(|e| format!("bad name `{s}`: {e}"))
}

/// Parse the SOA MNAME or RNAME of `[zones.soa]`: a name with a dot in it is absolute (the
/// trailing dot optional, as for the `ns` entries), a single label (the default `hostmaster`)
/// or `@` is relative to the zone.
fn soa_name(s: &str, origin: &Name) -> Result<Name, String> {
    let s = s.trim();
    // A dot escaped as `\.` is part of a label (`john\.doe` is one label).
    let mut escaped = false;
    let has_dot = s.chars().any(|c| {
        let dot = c == '.' && !escaped;
        escaped = c == '\\' && !escaped;
        dot
    });
    if s == "@" || s.ends_with('.') || !has_dot {
        return parse_name(s, origin);
    }
    parse_name(&format!("{s}."), origin)
}

fn num<T: FromStr>(s: Option<&str>, what: &str) -> Result<T, String> {
    s.ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

/// Parse one record's presentation data for `rtype`.
pub fn parse_rdata(rtype: &str, data: &str, origin: &Name) -> Result<RData, String> {
    let data = data.trim();
    let mut words = data.split_whitespace();
    let rd = match rtype {
        "A" => RData::A(
            Ipv4Addr::from_str(data)
                .map_err(|_| format!("bad IPv4 address `{data}`"))?
                .into(),
        ),
        "AAAA" => RData::AAAA(
            Ipv6Addr::from_str(data)
                .map_err(|_| format!("bad IPv6 address `{data}`"))?
                .into(),
        ),
        "CNAME" => RData::CNAME(CNAME(parse_name(data, origin)?)),
        "NS" => RData::NS(NS(parse_name(data, origin)?)),
        "MX" => {
            let pref = num(words.next(), "MX preference")?;
            let host = words.next().ok_or("missing MX exchange")?;
            RData::MX(MX::new(pref, parse_name(host, origin)?))
        }
        "SRV" => {
            let prio = num(words.next(), "SRV priority")?;
            let weight = num(words.next(), "SRV weight")?;
            let port = num(words.next(), "SRV port")?;
            let target = words.next().ok_or("missing SRV target")?;
            RData::SRV(SRV::new(prio, weight, port, parse_name(target, origin)?))
        }
        "TXT" => {
            let chunks: Vec<String> = data
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            RData::TXT(TXT::new(if chunks.is_empty() {
                vec![String::new()]
            } else {
                chunks
            }))
        }
        "CAA" => RData::try_from_str(RecordType::CAA, data)
            .map_err(|e| format!("bad CAA `{data}`: {e}"))?,
        other => return Err(format!("unsupported type `{other}`")),
    };
    if words.next().is_some() && matches!(rtype, "MX" | "SRV") {
        return Err(format!("trailing data in `{data}`"));
    }
    Ok(rd)
}

fn rtype_code(rtype: &str) -> u16 {
    u16::from(RecordType::from_str(rtype).unwrap_or(RecordType::Unknown(0)))
}

/// Presentation name → lowercase wire name inside `apex` (or an error message).
fn owner_wire(name: &str, zone: &ZoneConfig) -> Result<Vec<u8>, String> {
    let apex = zone.name.trim_end_matches('.');
    let full = if name == "@" {
        apex.to_string()
    } else if let Some(abs) = name.strip_suffix('.') {
        abs.to_string()
    } else {
        format!("{name}.{apex}")
    };
    let wire = name_to_wire(&full).ok_or_else(|| format!("`{name}` is not a valid name"))?;
    let apex_wire = name_to_wire(apex).unwrap_or_default();
    if !wire.ends_with(&apex_wire) || !label_starts(&wire).any(|s| wire[s..] == apex_wire[..]) {
        return Err(format!("`{name}` is not inside zone `{apex}`"));
    }
    Ok(wire)
}

/// Write one RR: owner (already wire), type, class IN, TTL, RDATA.
pub fn write_rr(out: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class::IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

impl Zones {
    /// Build every zone of `config` (records parsed; errors name the config key).
    pub fn build(config: &RouterConfig) -> Result<Zones, ConfigError> {
        let zs = Self::build_unchecked(config)?;
        zs.check_cname_loops(config)?;
        Ok(zs)
    }

    /// [`Zones::build`] without the CNAME loop check (tests of the answer-time guard).
    fn build_unchecked(config: &RouterConfig) -> Result<Zones, ConfigError> {
        let mut zones = Vec::with_capacity(config.zones.len());
        for (i, zc) in config.zones.iter().enumerate() {
            zones.push(build_zone(i, zc)?);
        }
        let mut zs = Zones { zones };
        for (i, s) in config.services.iter().enumerate() {
            let key = format!("services[{i}].name");
            let wire =
                name_to_wire(&s.name).ok_or_else(|| zone_err(key.clone(), "not a valid name"))?;
            let zone = zs
                .zone_index(&wire)
                .ok_or_else(|| zone_err(key.clone(), "not inside any zone"))?;
            let z = &mut zs.zones[zone];
            if let Some(node) = z.nodes.get(&wire[..]) {
                if node.rrset(rtype::A).is_some()
                    || node.rrset(rtype::AAAA).is_some()
                    || node.rrset(rtype::CNAME).is_some()
                {
                    return Err(zone_err(
                        key,
                        format!("`{}` also has static A/AAAA/CNAME records", s.name),
                    ));
                }
            }
            insert_node(z, &wire).service = Some(i);
        }
        let mut next_id = 0u32;
        for (i, z) in zs.zones.iter_mut().enumerate() {
            finish_zone(z);
            z.id = u32::try_from(i).unwrap_or(u32::MAX);
            for node in z.nodes.values_mut() {
                node.id = next_id;
                next_id = next_id.wrapping_add(1);
            }
        }
        Ok(zs)
    }

    /// Zones built without the CNAME loop check, so tests can reach the guard `decide`
    /// keeps at answer time.
    #[cfg(test)]
    pub(crate) fn build_with_loops(config: &RouterConfig) -> Result<Zones, ConfigError> {
        Self::build_unchecked(config)
    }

    /// Refuse a CNAME of `[[zones.records]]` whose chain inside our zones comes back to a
    /// name already in it (`a → b → a`, `a → a`, a wildcard whose target it covers): the
    /// error names the record.
    fn check_cname_loops(&self, config: &RouterConfig) -> Result<(), ConfigError> {
        for (i, zc) in config.zones.iter().enumerate() {
            for (j, rc) in zc.records.iter().enumerate() {
                if !rc.rtype.eq_ignore_ascii_case("CNAME") {
                    continue;
                }
                let Ok(owner) = owner_wire(&rc.name, zc) else {
                    continue;
                };
                if let Some(chain) = self.cname_loop(&owner) {
                    return Err(zone_err(
                        format!("zones[{i}].records[{j}].data"),
                        format!("CNAME loop: {chain}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The chain from `owner` (presentation form, `a. → b. → a.`) when it loops.
    fn cname_loop(&self, owner: &[u8]) -> Option<String> {
        let mut seen: Vec<&[u8]> = vec![owner];
        let mut node = self.node(owner)?;
        while let Some(target) = node
            .rrset(rtype::CNAME)
            .and_then(|c| c.cname_target.as_deref())
        {
            let looped = seen.contains(&target);
            seen.push(target);
            if looped {
                let names: Vec<String> = seen.iter().map(|n| wire_to_string(n)).collect();
                return Some(names.join(" → "));
            }
            match self.lookup(target) {
                Lookup::Found { node: n, .. } => node = n,
                _ => return None,
            }
        }
        None
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Index of the zone with the longest apex that contains `name` (lowercase wire).
    fn zone_index(&self, name: &[u8]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, z) in self.zones.iter().enumerate() {
            let inside = name.len() >= z.apex.len()
                && name.ends_with(&z.apex)
                && (name.len() == z.apex.len()
                    || label_starts(name).any(|s| s == name.len() - z.apex.len()));
            if inside && best.is_none_or(|b| self.zones[b].apex.len() < z.apex.len()) {
                best = Some(i);
            }
        }
        best
    }

    /// The zone containing `name`, if any.
    pub fn zone_of(&self, name: &[u8]) -> Option<&Zone> {
        self.zone_index(name).map(|i| &self.zones[i])
    }

    /// Look up a lowercase wire name (for any type but DS: see [`Zones::lookup_type`]).
    pub fn lookup(&self, name: &[u8]) -> Lookup<'_> {
        self.lookup_type(name, 0)
    }

    /// Look up a lowercase wire name for a question of `qtype`. DS at a delegation point is
    /// the parent's data (RFC 4035 §3.1.4.1), so it is found in our zone rather than referred.
    pub fn lookup_type(&self, name: &[u8], qtype: u16) -> Lookup<'_> {
        let Some(zone) = self.zone_of(name) else {
            return Lookup::Refused;
        };
        let apex_at = name.len() - zone.apex.len();
        if zone.has_cuts {
            // Walk from just below the apex down to the name itself (a DS question stops
            // above the name).
            let parent_side = usize::from(qtype == rtype::DS);
            let starts: Vec<usize> = label_starts(name)
                .filter(|&s| s < apex_at && s >= parent_side)
                .collect();
            for &s in starts.iter().rev() {
                if let Some((cut, node)) = zone.nodes.get_key_value(&name[s..]) {
                    if node.cut {
                        if let Some(ns) = node.rrset(rtype::NS) {
                            return Lookup::Referral {
                                zone,
                                cut,
                                node,
                                ns,
                            };
                        }
                    }
                }
            }
        }
        if let Some(node) = zone.nodes.get(name) {
            return Lookup::Found {
                zone,
                node,
                wildcard: false,
            };
        }
        // Closest encloser: the longest existing ancestor; then its wildcard.
        let mut buf = [0u8; crate::wire::MAX_NAME_LEN + 2];
        for s in label_starts(name).skip(1) {
            let anc = &name[s..];
            if s > apex_at {
                break;
            }
            if zone.nodes.contains_key(anc) {
                buf[0] = 1;
                buf[1] = b'*';
                let wl = 2 + anc.len();
                if wl <= crate::wire::MAX_NAME_LEN {
                    buf[2..wl].copy_from_slice(anc);
                    if let Some(node) = zone.nodes.get(&buf[..wl]) {
                        return Lookup::Found {
                            zone,
                            node,
                            wildcard: true,
                        };
                    }
                }
                return Lookup::NxDomain { zone };
            }
        }
        Lookup::NxDomain { zone }
    }

    /// A node by exact lowercase wire name (for CNAME chasing and glue).
    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        self.zone_of(name).and_then(|z| z.nodes.get(name))
    }
}

fn insert_node<'z>(z: &'z mut Zone, wire: &[u8]) -> &'z mut Node {
    // Ancestors down to the apex exist as (possibly empty) nodes.
    let apex_at = wire.len() - z.apex.len();
    for s in label_starts(wire) {
        if s > apex_at {
            break;
        }
        z.nodes.entry(wire[s..].into()).or_default();
    }
    z.nodes.entry(wire.into()).or_default()
}

fn build_zone(i: usize, zc: &ZoneConfig) -> Result<Zone, ConfigError> {
    let key = format!("zones[{i}]");
    let apex_str = zc.name.trim_end_matches('.').to_ascii_lowercase();
    let origin = Name::from_ascii(format!("{apex_str}."))
        .map_err(|e| zone_err(format!("{key}.name"), e.to_string()))?;
    let apex = name_to_wire(&apex_str)
        .ok_or_else(|| zone_err(format!("{key}.name"), "not a valid name"))?;
    let mut z = Zone {
        id: 0,
        name: format!("{apex_str}."),
        apex: apex.clone(),
        nodes: HashMap::default(),
        negative_soa: Vec::new(),
        has_cuts: false,
    };
    insert_node(&mut z, &apex);

    // SOA.
    let soa = &zc.soa;
    let mname = match &soa.mname {
        Some(m) => soa_name(m, &origin),
        None => parse_name(&format!("{}.", zc.ns[0].trim_end_matches('.')), &origin),
    }
    .map_err(|e| zone_err(format!("{key}.soa.mname"), e))?;
    let rname = soa_name(soa.rname.as_deref().unwrap_or("hostmaster"), &origin)
        .map_err(|e| zone_err(format!("{key}.soa.rname"), e))?;
    let soa_rd = RData::SOA(SOA::new(
        mname,
        rname,
        soa.serial,
        soa.refresh as i32,
        soa.retry as i32,
        soa.expire as i32,
        soa.minimum,
    ));
    let soa_bytes = encode_rdata(&soa_rd).map_err(|e| zone_err(format!("{key}.soa"), e))?;
    write_rr(
        &mut z.negative_soa,
        &apex,
        rtype::SOA,
        soa.ttl.min(soa.minimum),
        &soa_bytes,
    );
    add_rdata(&mut z, &apex, rtype::SOA, soa.ttl, soa_bytes, None);

    // Apex NS.
    for (j, ns) in zc.ns.iter().enumerate() {
        let target = parse_name(&format!("{}.", ns.trim_end_matches('.')), &origin)
            .map_err(|e| zone_err(format!("{key}.ns[{j}]"), e))?;
        let bytes = encode_rdata(&RData::NS(NS(target)))
            .map_err(|e| zone_err(format!("{key}.ns[{j}]"), e))?;
        add_rdata(&mut z, &apex, rtype::NS, zc.ttl, bytes, None);
    }

    // Static records.
    for (j, rc) in zc.records.iter().enumerate() {
        let rkey = format!("{key}.records[{j}]");
        let rtype = rc.rtype.to_ascii_uppercase();
        let owner = owner_wire(&rc.name, zc).map_err(|e| zone_err(format!("{rkey}.name"), e))?;
        let code = rtype_code(&rtype);
        for (k, d) in rc.data.iter().enumerate() {
            let rd = parse_rdata(&rtype, d, &origin)
                .map_err(|e| zone_err(format!("{rkey}.data[{k}]"), e))?;
            let target = match &rd {
                RData::CNAME(c) => Some(name_wire(&c.0)),
                _ => None,
            };
            let bytes = encode_rdata(&rd).map_err(|e| zone_err(format!("{rkey}.data[{k}]"), e))?;
            add_rdata(
                &mut z,
                &owner,
                code,
                rc.ttl.unwrap_or(zc.ttl),
                bytes,
                target,
            );
        }
        let node = &z.nodes[&owner[..]];
        if node.rrset(rtype::CNAME).is_some() && node.rrsets.len() > 1 {
            return Err(zone_err(
                format!("{rkey}.type"),
                format!(
                    "`{}` has a CNAME and other records (RFC 1034 §3.6.2)",
                    rc.name
                ),
            ));
        }
        if node.rrset(rtype::CNAME).is_some_and(|r| r.rdata.len() > 1) {
            return Err(zone_err(
                format!("{rkey}.data"),
                "a name has at most one CNAME",
            ));
        }
        if code == rtype::NS && owner != apex {
            if let Some(n) = z.nodes.get_mut(&owner[..]) {
                n.cut = true;
            }
            z.has_cuts = true;
        }
    }
    Ok(z)
}

fn add_rdata(
    z: &mut Zone,
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
    cname_target: Option<Vec<u8>>,
) {
    let node = insert_node(z, owner);
    match node.rrsets.iter_mut().find(|r| r.rtype == rtype) {
        Some(set) => {
            // One TTL per RRset: the smallest one configured wins.
            set.ttl = set.ttl.min(ttl);
            if !set.rdata.contains(&rdata) {
                set.rdata.push(rdata);
            }
        }
        None => node.rrsets.push(RrSet {
            rtype,
            ttl,
            rdata: vec![rdata],
            glue: Vec::new(),
            glue_count: 0,
            glue_in_domain: false,
            cname_target,
        }),
    }
}

/// After all records are in: compute glue for every NS set (A/AAAA of targets in the zone).
fn finish_zone(z: &mut Zone) {
    /// An NS owner and its glue: bytes, record count, in-domain.
    type Glue = (Box<[u8]>, Vec<u8>, u16, bool);
    let mut glue_for: Vec<Glue> = Vec::new();
    for (owner, node) in &z.nodes {
        let Some(ns) = node.rrset(rtype::NS) else {
            continue;
        };
        let mut glue = Vec::new();
        let mut count = 0u16;
        let mut in_domain = false;
        for rd in &ns.rdata {
            // NS RDATA is the target name, uncompressed, as encoded.
            let target = rd.to_ascii_lowercase();
            if let Some(t) = z.nodes.get(&target[..]) {
                for glue_type in [rtype::A, rtype::AAAA] {
                    if let Some(set) = t.rrset(glue_type) {
                        for r in &set.rdata {
                            write_rr(&mut glue, &target, glue_type, set.ttl, r);
                            count = count.saturating_add(1);
                        }
                        in_domain |=
                            label_starts(&target).any(|s| target.get(s..) == Some(&owner[..]));
                    }
                }
            }
        }
        glue_for.push((owner.clone(), glue, count, in_domain));
    }
    for (owner, glue, count, in_domain) in glue_for {
        if let Some(set) = z
            .nodes
            .get_mut(&owner)
            .and_then(|n| n.rrsets.iter_mut().find(|r| r.rtype == rtype::NS))
        {
            set.glue = glue;
            set.glue_count = count;
            set.glue_in_domain = in_domain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RouterConfig {
        cdn_shared::config::load_str(
            r#"
            [[regions]]
            name = "r1"
            lat = 1.0
            lon = 2.0
            [[edges]]
            id = "e1"
            region = "r1"
            ipv4 = ["192.0.2.1"]
            [[zones]]
            name = "cdn.example.test"
            ns = ["ns1.cdn.example.test", "ns.other.test"]
            [[zones.records]]
            name = "ns1"
            type = "A"
            data = ["192.0.2.53"]
            [[zones.records]]
            name = "alias"
            type = "CNAME"
            data = ["static"]
            [[zones.records]]
            name = "static"
            type = "A"
            data = ["192.0.2.99"]
            [[zones.records]]
            name = "a.b.c"
            type = "TXT"
            data = ["hello"]
            [[zones.records]]
            name = "sub"
            type = "NS"
            data = ["ns.sub"]
            [[zones.records]]
            name = "ns.sub"
            type = "A"
            data = ["192.0.2.7"]
            [[zones.records]]
            name = "@"
            type = "MX"
            data = ["10 mail"]
            [[services]]
            name = "*.img.cdn.example.test"
            [[services]]
            name = "www.cdn.example.test"
            "#,
        )
        .unwrap()
    }

    fn w(s: &str) -> Vec<u8> {
        name_to_wire(s).unwrap()
    }

    #[test]
    fn lookups() {
        let zs = Zones::build(&config()).unwrap();
        assert!(matches!(zs.lookup(&w("example.test")), Lookup::Refused));
        assert!(matches!(zs.lookup(&w("other.test")), Lookup::Refused));
        assert!(matches!(
            zs.lookup(&w("xcdn.example.test")),
            Lookup::Refused
        ));
        let Lookup::Found { node, .. } = zs.lookup(&w("cdn.example.test")) else {
            panic!()
        };
        assert!(node.rrset(rtype::SOA).is_some());
        let ns = node.rrset(rtype::NS).unwrap();
        assert_eq!(ns.rdata.len(), 2);
        assert_eq!(ns.glue_count, 1, "glue only for the in-zone name server");
        assert!(node.rrset(15).is_some());
        // Empty non-terminal.
        let Lookup::Found { node, .. } = zs.lookup(&w("b.c.cdn.example.test")) else {
            panic!()
        };
        assert!(!node.has_data());
        assert!(matches!(
            zs.lookup(&w("nope.cdn.example.test")),
            Lookup::NxDomain { .. }
        ));
        // Wildcard service, several labels deep, but not the parent itself.
        let Lookup::Found { node, .. } = zs.lookup(&w("x.y.img.cdn.example.test")) else {
            panic!()
        };
        assert_eq!(node.service, Some(0));
        let Lookup::Found { node, .. } = zs.lookup(&w("img.cdn.example.test")) else {
            panic!()
        };
        assert_eq!(node.service, None);
        let Lookup::Found { node, .. } = zs.lookup(&w("www.cdn.example.test")) else {
            panic!()
        };
        assert_eq!(node.service, Some(1));
        // CNAME target recorded.
        let Lookup::Found { node, .. } = zs.lookup(&w("alias.cdn.example.test")) else {
            panic!()
        };
        assert_eq!(
            node.rrset(rtype::CNAME).unwrap().cname_target.as_deref(),
            Some(&w("static.cdn.example.test")[..])
        );
        // Delegation.
        let Lookup::Referral { cut, ns, .. } = zs.lookup(&w("deep.sub.cdn.example.test")) else {
            panic!()
        };
        assert_eq!(cut, &w("sub.cdn.example.test")[..]);
        assert_eq!(ns.glue_count, 1);
        assert!(ns.glue_in_domain, "ns.sub is below sub");
        // DS at the delegation point is ours (the parent side); below it, still a referral.
        let Lookup::Found { node, .. } = zs.lookup_type(&w("sub.cdn.example.test"), rtype::DS)
        else {
            panic!()
        };
        assert!(node.cut);
        assert!(matches!(
            zs.lookup_type(&w("deep.sub.cdn.example.test"), rtype::DS),
            Lookup::Referral { .. }
        ));
        assert!(matches!(
            zs.lookup_type(&w("sub.cdn.example.test"), rtype::A),
            Lookup::Referral { .. }
        ));
    }

    #[test]
    fn negative_soa_ttl_is_min_of_ttl_and_minimum() {
        let zs = Zones::build(&config()).unwrap();
        let z = &zs.zones()[0];
        let soa = &z.negative_soa;
        let at = z.apex.len() + 4;
        let ttl = u32::from_be_bytes([soa[at], soa[at + 1], soa[at + 2], soa[at + 3]]);
        assert_eq!(ttl, 60);
    }

    /// MNAME and RNAME of the negative SOA of the first zone of `c`.
    fn soa_names(c: &RouterConfig) -> (String, String) {
        use hickory_proto::rr::Record;
        use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
        let zs = Zones::build(c).unwrap();
        let rr = Record::read(&mut BinDecoder::new(&zs.zones()[0].negative_soa)).unwrap();
        let RData::SOA(soa) = rr.data else {
            panic!("not an SOA: {rr:?}")
        };
        (soa.mname.to_ascii(), soa.rname.to_ascii())
    }

    #[test]
    fn soa_names_with_a_dot_are_absolute_and_single_labels_relative() {
        let mut c = config();
        assert_eq!(
            soa_names(&c),
            (
                "ns1.cdn.example.test.".into(),
                "hostmaster.cdn.example.test.".into()
            ),
            "defaults: the first ns, hostmaster in the zone"
        );
        // As deploy/router.toml writes them: no trailing dot, yet absolute.
        c.zones[0].soa.mname = Some("ns2.cdn.example.test".into());
        c.zones[0].soa.rname = Some("hostmaster.cdn.example.test".into());
        assert_eq!(
            soa_names(&c),
            (
                "ns2.cdn.example.test.".into(),
                "hostmaster.cdn.example.test.".into()
            )
        );
        c.zones[0].soa.mname = Some("ns.example.net.".into());
        c.zones[0].soa.rname = Some("dns-admin".into());
        assert_eq!(
            soa_names(&c),
            (
                "ns.example.net.".into(),
                "dns-admin.cdn.example.test.".into()
            )
        );
        c.zones[0].soa.mname = Some("@".into());
        c.zones[0].soa.rname = Some("john\\.doe".into());
        assert_eq!(
            soa_names(&c),
            (
                "cdn.example.test.".into(),
                "john\\.doe.cdn.example.test.".into()
            ),
            "an escaped dot does not make a name absolute"
        );
    }

    #[test]
    fn cname_loops_are_refused_and_name_the_record() {
        let cname = |name: &str, target: &str| cdn_shared::config::router::RecordConfig {
            name: name.into(),
            rtype: "CNAME".into(),
            ttl: None,
            data: vec![target.into()],
        };
        for (records, chain) in [
            (
                vec![cname("loop1", "loop2"), cname("loop2", "loop1")],
                "loop1.cdn.example.test. → loop2.cdn.example.test. → loop1.cdn.example.test.",
            ),
            (
                vec![cname("self", "self.cdn.example.test.")],
                "self.cdn.example.test. → self.cdn.example.test.",
            ),
            (
                vec![cname("c1", "c2"), cname("c2", "c3"), cname("c3", "c1")],
                "c1.cdn.example.test. → c2.cdn.example.test. → c3.cdn.example.test. → \
                 c1.cdn.example.test.",
            ),
            (
                vec![cname("*.w", "a.w")],
                "*.w.cdn.example.test. → a.w.cdn.example.test. → a.w.cdn.example.test.",
            ),
        ] {
            let mut c = config();
            c.zones[0].records.extend(records);
            let e = Zones::build(&c).unwrap_err();
            assert_eq!(e.key, "zones[0].records[7].data", "{chain}");
            assert_eq!(e.message, format!("CNAME loop: {chain}"));
        }
        // A chain that ends is fine.
        let mut c = config();
        c.zones[0].records.push(cname("a1", "a2"));
        c.zones[0].records.push(cname("a2", "alias"));
        Zones::build(&c).unwrap();
    }

    #[test]
    fn bad_records_name_the_key() {
        let mut c = config();
        c.zones[0].records[0].data = vec!["not-an-ip".into()];
        let e = Zones::build(&c).unwrap_err();
        assert_eq!(e.key, "zones[0].records[0].data[0]");
        let mut c = config();
        c.zones[0]
            .records
            .push(cdn_shared::config::router::RecordConfig {
                name: "alias".into(),
                rtype: "TXT".into(),
                ttl: None,
                data: vec!["x".into()],
            });
        assert!(Zones::build(&c).unwrap_err().message.contains("CNAME"));
        let mut c = config();
        c.zones[0].records[0].name = "elsewhere.test.".into();
        assert_eq!(
            Zones::build(&c).unwrap_err().key,
            "zones[0].records[0].name"
        );
    }
}
