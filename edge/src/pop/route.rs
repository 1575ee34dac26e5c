//! Where a fill goes (pure): the peers to try, in order, then the shield members, then the
//! origin. The caller ([`crate::upstream`]) tries them one after the other.
//!
//! * A request from a peer or shield (`CDN-Hop`, authenticated) is never sent to a peer
//!   again; a request from another region's edge (`CDN-Hop: shield`) goes to the origin.
//! * Otherwise the key's preference list in this PoP ([`ring::preference`]: owner first,
//!   bounded load) gives the peers: every member before this edge in the list, at most
//!   [`MAX_PEERS`] (the owner, then the next member when the owner fails). When this edge is
//!   the owner, there are none.
//! * Then, when the host has shield regions and this edge's region is not one of them, the
//!   owner of the key in each shield region, in the configured order, at most
//!   [`MAX_SHIELDS`].
//! * Then the origin.

use super::ring::{self, Bound, Node};

/// Peers tried before filling ourselves.
pub const MAX_PEERS: usize = 2;
/// Shield members tried before the origin.
pub const MAX_SHIELDS: usize = 2;

/// Which hop a request arrived from (the authenticated `CDN-Hop` marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// From a member of this PoP.
    Peer,
    /// From an edge of another region using this PoP as its shield.
    Shield,
}

impl Hop {
    /// The marker's token.
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Peer => "peer",
            Hop::Shield => "shield",
        }
    }
}

/// One place to fetch from before the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A member of this PoP (index into the PoP's members).
    Peer(usize),
    /// A member of a shield region (region index, member index).
    Shield(usize, usize),
}

/// The fill's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Tried in order; the origin comes after them.
    pub targets: Vec<Target>,
    /// This edge owns the key in its PoP (or the request came from a peer/shield).
    pub owner_is_me: bool,
}

/// Plan the fill of the key hashed as `key_hash` at member `me` of `pop` (its node is taken
/// as up). `shields` are the host's shield regions in order (region index, its members),
/// empty when the host has none or this edge's region is one of them.
pub fn route(
    key_hash: u64,
    hop: Option<Hop>,
    me: usize,
    pop: &[Node],
    shields: &[(usize, Vec<Node>)],
    bound: Bound,
) -> Route {
    let mut targets = Vec::new();
    let mut owner_is_me = true;
    if hop.is_none() {
        let pref = ring::preference(key_hash, pop, bound);
        owner_is_me = pref.first() == Some(&me);
        targets.extend(
            pref.iter()
                .take_while(|&&i| i != me)
                .take(MAX_PEERS)
                .map(|&i| Target::Peer(i)),
        );
    }
    if hop != Some(Hop::Shield) {
        let mut n = 0;
        for (region, nodes) in shields {
            if n == MAX_SHIELDS {
                break;
            }
            if let Some(&m) = ring::preference(key_hash, nodes, bound).first() {
                targets.push(Target::Shield(*region, m));
                n += 1;
            }
        }
    }
    Route {
        targets,
        owner_is_me,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop::ring::hash;

    const B: Bound = Bound {
        epsilon: 0.25,
        floor: 0.0,
    };

    fn nodes(prefix: &str, n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| Node {
                id_hash: hash(format!("{prefix}{i}").as_bytes()),
                weight: 1.0,
                up: true,
                load: 0.0,
            })
            .collect()
    }

    /// A key whose rendezvous order in `pop` is exactly `want`.
    fn key_with_order(pop: &[Node], want: &[usize]) -> u64 {
        (0u64..10_000)
            .map(|k| hash(&k.to_le_bytes()))
            .find(|&k| ring::order(k, pop) == want)
            .expect("some key has every order")
    }

    #[test]
    fn the_owner_fills_itself() {
        let pop = nodes("e", 3);
        let k = key_with_order(&pop, &[1, 0, 2]);
        let r = route(k, None, 1, &pop, &[], B);
        assert_eq!(r.targets, vec![]);
        assert!(r.owner_is_me);
    }

    #[test]
    fn others_ask_the_owner_then_the_next_member_before_themselves() {
        let pop = nodes("e", 3);
        let k = key_with_order(&pop, &[1, 0, 2]);
        assert_eq!(
            route(k, None, 0, &pop, &[], B).targets,
            vec![Target::Peer(1)]
        );
        let r = route(k, None, 2, &pop, &[], B);
        assert_eq!(r.targets, vec![Target::Peer(1), Target::Peer(0)]);
        assert!(!r.owner_is_me);
    }

    #[test]
    fn peer_requests_are_never_forwarded_to_a_peer() {
        let pop = nodes("e", 3);
        let k = key_with_order(&pop, &[1, 0, 2]);
        let shields = vec![(0, nodes("s", 2))];
        let r = route(k, Some(Hop::Peer), 0, &pop, &shields, B);
        assert!(r.targets.iter().all(|t| matches!(t, Target::Shield(..))));
        assert_eq!(r.targets.len(), 1);
        // A shield request goes to the origin.
        let r = route(k, Some(Hop::Shield), 0, &pop, &shields, B);
        assert!(r.targets.is_empty());
    }

    #[test]
    fn shields_in_order_skipping_regions_that_are_down() {
        let pop = nodes("e", 1);
        let mut a = nodes("a", 2);
        let b = nodes("b", 2);
        let c = nodes("c", 1);
        let k = hash(b"/x");
        let owner_a = ring::preference(k, &a, B)[0];
        let owner_b = ring::preference(k, &b, B)[0];
        let shields = vec![(0, a.clone()), (1, b.clone()), (2, c.clone())];
        assert_eq!(
            route(k, None, 0, &pop, &shields, B).targets,
            vec![Target::Shield(0, owner_a), Target::Shield(1, owner_b)]
        );
        for n in &mut a {
            n.up = false;
        }
        let shields = vec![(0, a), (1, b), (2, c)];
        assert_eq!(
            route(k, None, 0, &pop, &shields, B).targets,
            vec![Target::Shield(1, owner_b), Target::Shield(2, 0)]
        );
    }

    #[test]
    fn a_down_owner_is_skipped() {
        let mut pop = nodes("e", 3);
        let k = key_with_order(&pop, &[1, 0, 2]);
        pop[1].up = false;
        let r = route(k, None, 2, &pop, &[], B);
        assert_eq!(r.targets, vec![Target::Peer(0)]);
    }
}
