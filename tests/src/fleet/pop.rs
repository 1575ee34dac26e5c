//! Points of presence in the local fleet (issue 16): `edges_per_region` edges per region on
//! `127.0.R.1` … `127.0.R.N` (same ports), each edge's `[cluster]` listing the members of its
//! region, the other regions (shield candidates) and, with `shield`, the `www` host's shield
//! region. Pure text generation; the unit tests load the output through the real schema.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::spec::{EdgePlan, FleetSpec, RegionSpec, SERVICE};

/// The fleet's `cluster.secret` (a demo value: real fleets use a long random one).
pub const CLUSTER_SECRET: &str = "fleet-demo-cluster-secret";

/// Every edge the spec runs: each region's edge, then its siblings `2..=N` with the id's
/// trailing digits replaced (`use1`, `use2`, …) and the last octet of the address raised
/// (`127.0.1.1`, `127.0.1.2`, …), same ports.
pub fn edge_slots(spec: &FleetSpec) -> Vec<RegionSpec> {
    let n = spec.edges_per_region.max(1);
    let mut out = Vec::new();
    for r in &spec.regions {
        let stem = r.edge_id.trim_end_matches(|c: char| c.is_ascii_digit());
        for j in 1..=n {
            let mut s = r.clone();
            if j > 1 {
                s.edge_id = format!("{stem}{j}");
                let o = r.ip.octets();
                s.ip = Ipv4Addr::new(o[0], o[1], o[2], o[3].saturating_add((j - 1) as u8));
            }
            out.push(s);
        }
    }
    out
}

/// Whether the edges get a `[cluster]` section: with several edges per region or a shield,
/// unless `no_cluster` (members then act alone, for comparison).
pub fn clustered(spec: &FleetSpec) -> bool {
    !spec.no_cluster && (spec.edges_per_region > 1 || spec.shield.is_some())
}

fn members(plans: &[&EdgePlan]) -> String {
    let v: Vec<String> = plans
        .iter()
        .map(|p| format!("{{ id = \"{}\", address = \"{}\" }}", p.id, p.http))
        .collect();
    format!("[{}]", v.join(", "))
}

/// The `[cluster]` tables of edge `e` among `plans` (empty when not [`clustered`]).
pub fn cluster_toml(spec: &FleetSpec, e: &EdgePlan, plans: &[EdgePlan]) -> String {
    if !clustered(spec) {
        return String::new();
    }
    let mut t = String::new();
    let own: Vec<&EdgePlan> = plans.iter().filter(|p| p.region == e.region).collect();
    let _ = writeln!(
        t,
        "\n[cluster]\nsecret = \"{CLUSTER_SECRET}\"\nmembers = {}\n{}",
        members(&own),
        spec.cluster_extra
    );
    let mut regions: Vec<&str> = Vec::new();
    for p in plans {
        if p.region != e.region && !regions.contains(&p.region.as_str()) {
            regions.push(&p.region);
        }
    }
    for r in regions {
        let theirs: Vec<&EdgePlan> = plans.iter().filter(|p| p.region == r).collect();
        let _ = writeln!(
            t,
            "[[cluster.regions]]\nname = \"{r}\"\nmembers = {}\n",
            members(&theirs)
        );
    }
    if let Some(s) = &spec.shield {
        let _ = writeln!(
            t,
            "[[cluster.shields]]\nhost = \"{SERVICE}\"\nregions = [\"{s}\"]\n"
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::config::edge::EdgeConfig;
    use cdn_shared::config::load_str;
    use std::net::SocketAddr;

    fn plans(spec: &FleetSpec) -> Vec<EdgePlan> {
        edge_slots(spec)
            .into_iter()
            .map(|r| EdgePlan {
                id: r.edge_id.clone(),
                region: r.name.clone(),
                ip: r.ip,
                http: SocketAddr::from((r.ip, 8081)),
                admin: SocketAddr::from((r.ip, 9081)),
                probe_override: None,
            })
            .collect()
    }

    #[test]
    fn slots_per_region() {
        let spec = FleetSpec {
            edges_per_region: 3,
            ..FleetSpec::default()
        };
        let s = edge_slots(&spec);
        assert_eq!(s.len(), 9);
        assert_eq!(s[0].edge_id, "use1");
        assert_eq!(s[2].edge_id, "use3");
        assert_eq!(s[2].ip, Ipv4Addr::new(127, 0, 1, 3));
        assert_eq!(s[3].edge_id, "euw1");
        assert_eq!(edge_slots(&FleetSpec::default()).len(), 3);
    }

    #[test]
    fn cluster_sections_load_through_the_real_schema() {
        let spec = FleetSpec {
            edges_per_region: 2,
            shield: Some("us-east".into()),
            ..FleetSpec::default()
        };
        let ps = plans(&spec);
        let e = &ps[2]; // euw1
        let text = super::super::config::edge_toml(&spec, e, "http://127.0.0.1:8080", &[], None)
            + &cluster_toml(&spec, e, &ps);
        let c: EdgeConfig = load_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
        let cl = c.cluster.expect("a [cluster] section");
        assert_eq!(cl.members.len(), 2);
        assert_eq!(cl.members[1].id, "euw2");
        assert_eq!(cl.regions.len(), 2);
        assert_eq!(cl.shields[0].regions, vec!["us-east".to_string()]);
        // Off: --no-cluster, or one edge per region and no shield.
        let off = FleetSpec {
            no_cluster: true,
            ..spec.clone()
        };
        assert!(cluster_toml(&off, e, &ps).is_empty());
        assert!(cluster_toml(&FleetSpec::default(), e, &ps).is_empty());
    }
}
