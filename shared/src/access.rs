//! Who may call an admin API (the router's and the edge's): role tokens (`[[admin.tokens]]`),
//! the deprecated single `admin.token`, and `admin.read_access`. [`authorize`] is pure
//! (credentials, header, peer in; a [`Principal`] or a [`Denied`] out); each binary's admin
//! module maps it to HTTP and writes the audit line. [`authorize_admin`] takes the router's
//! `[admin]` section.
//!
//! * One header spelling: `Authorization: Bearer <token>` (anything else is a bad token).
//! * Tokens are compared in constant time: the presented token and every configured one are
//!   hashed (SipHash-128 under a per-process random key, so lengths do not leak either) and the
//!   hashes compared with `subtle`, all of them, without stopping at a match.
//! * `read`: edges, services, explain, metrics. Without a token when `read_access` is `open`,
//!   or `loopback` (the default) and the client is on loopback. `operate` tokens may read too.
//! * `operate`: drain, undrain, reload, purge.
//! * `report`: `POST /api/v1/reports` for its own `edge` only ([`Principal::may_report_as`]).
//! * The deprecated `admin.token` is an `operate` token that may also report as any edge, so
//!   configs with one shared secret keep working.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::config::router::{AdminRole, AdminSection, AdminToken, ReadAccess};
use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;
use subtle::{Choice, ConstantTimeEq};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A read.
    Read,
    /// An operator write.
    Operate,
    /// Posting a report (the edge is checked once the body is read).
    Report,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token name for the audit log: `[[admin.tokens]].name`, `admin.token` for the
    /// deprecated token, `anonymous` for a read without a token.
    pub name: String,
    /// The token's role (`None` for anonymous reads).
    pub role: Option<AdminRole>,
    /// The edge a `report` token reports as (`None`: any edge, for the deprecated token).
    pub edge: Option<String>,
}

impl Principal {
    /// Whether this caller may post a report for `edge_id`.
    pub fn may_report_as(&self, edge_id: &str) -> bool {
        match self.role {
            Some(AdminRole::Report) => self.edge.as_deref() == Some(edge_id),
            // Only the deprecated token is `operate` with report rights.
            Some(AdminRole::Operate) => self.name == LEGACY_NAME,
            _ => false,
        }
    }
}

/// Audit name of the deprecated single token.
pub const LEGACY_NAME: &str = "admin.token";

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header (401).
    Missing,
    /// A header that is not `Bearer <a configured token>` (401).
    BadToken,
    /// A valid token without the role needed (403).
    WrongRole {
        /// Token name.
        name: String,
        /// Its role.
        role: AdminRole,
    },
    /// No token at all is configured for writes (403).
    NoTokens,
}

impl Denied {
    /// HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Missing | Denied::BadToken => 401,
            Denied::WrongRole { .. } | Denied::NoTokens => 403,
        }
    }

    /// The message of the refusal.
    pub fn message(&self) -> String {
        match self {
            Denied::Missing => "missing bearer token (Authorization: Bearer <token>)".into(),
            Denied::BadToken => "bad bearer token".into(),
            Denied::WrongRole { name, role } => format!(
                "token `{name}` has role `{}`, which may not do this",
                role.as_str()
            ),
            Denied::NoTokens => {
                "writes are disabled: admin.token is not configured and no [[admin.tokens]] has \
                 this role"
                    .into()
            }
        }
    }
}

/// Log the deprecation of `admin.token` when it is set (at start and after each reload).
pub fn warn_deprecated(config: &AdminSection) {
    if config.token.is_some() {
        tracing::warn!(
            "admin.token is deprecated: it still works as an `operate` token that may also \
             report as any edge; give each operator and each edge its own [[admin.tokens]] \
             entry (see the README's migration note)"
        );
    }
}

fn hash_key() -> &'static [u8; 16] {
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn digest(secret: &[u8]) -> [u8; 16] {
    let mut h = SipHasher24::new_with_key(hash_key());
    h.write(secret);
    h.finish128().as_bytes()
}

/// The credentials an admin listener accepts.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The deprecated single token (`admin.token`).
    pub legacy: Option<&'a str>,
    /// `[[admin.tokens]]`.
    pub tokens: &'a [AdminToken],
    /// `admin.read_access`.
    pub read_access: ReadAccess,
}

impl<'a> Credentials<'a> {
    /// The router's `[admin]`.
    pub fn of(config: &'a AdminSection) -> Credentials<'a> {
        Credentials {
            legacy: config.token.as_deref(),
            tokens: &config.tokens,
            read_access: config.read_access,
        }
    }
}

/// [`authorize`] against the router's `[admin]` section.
pub fn authorize_admin(
    config: &AdminSection,
    authorization: Option<&[u8]>,
    peer: Option<IpAddr>,
    need: Need,
) -> Result<Principal, Denied> {
    authorize(Credentials::of(config), authorization, peer, need)
}

/// Decide whether a request with `authorization` (the header's raw value) from `peer` may do
/// what it `need`s with credentials `config`.
pub fn authorize(
    config: Credentials<'_>,
    authorization: Option<&[u8]>,
    peer: Option<IpAddr>,
    need: Need,
) -> Result<Principal, Denied> {
    let Some(value) = authorization else {
        if need == Need::Read {
            let open = match config.read_access {
                ReadAccess::Open => true,
                ReadAccess::Loopback => peer.is_some_and(|p| p.is_loopback()),
                ReadAccess::Token => false,
            };
            if open {
                return Ok(Principal {
                    name: "anonymous".into(),
                    role: None,
                    edge: None,
                });
            }
        }
        if need != Need::Read && config.legacy.is_none() && config.tokens.is_empty() {
            return Err(Denied::NoTokens);
        }
        return Err(Denied::Missing);
    };
    if need != Need::Read && config.legacy.is_none() && config.tokens.is_empty() {
        return Err(Denied::NoTokens);
    }
    let given = value.strip_prefix(b"Bearer ").unwrap_or(b"");
    let given = digest(given);
    // Every configured token is compared (no early exit), the match kept in constant time.
    let mut found: Option<Principal> = None;
    let legacy = Principal {
        name: LEGACY_NAME.into(),
        role: Some(AdminRole::Operate),
        edge: None,
    };
    let candidates = config
        .legacy
        .iter()
        .map(|t| (t.as_bytes(), Some(legacy.clone())))
        .chain(config.tokens.iter().map(|t| {
            (
                t.token.as_bytes(),
                Some(Principal {
                    name: t.name.clone(),
                    role: Some(t.role),
                    edge: t.edge.clone(),
                }),
            )
        }));
    for (secret, who) in candidates {
        let same: Choice = digest(secret).ct_eq(&given);
        if bool::from(same) && found.is_none() {
            found = who;
        }
    }
    let Some(p) = found else {
        return Err(Denied::BadToken);
    };
    let role = p.role.unwrap_or(AdminRole::Read);
    let allowed = match need {
        Need::Read => matches!(role, AdminRole::Read | AdminRole::Operate),
        Need::Operate => role == AdminRole::Operate,
        Need::Report => {
            role == AdminRole::Report || (role == AdminRole::Operate && p.name == LEGACY_NAME)
        }
    };
    if allowed {
        Ok(p)
    } else {
        Err(Denied::WrongRole { name: p.name, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(legacy: Option<&str>, read: ReadAccess) -> AdminSection {
        let tok = |name: &str, role, token: &str, edge: Option<&str>| AdminToken {
            name: name.into(),
            role,
            token: token.into(),
            edge: edge.map(str::to_string),
        };
        AdminSection {
            token: legacy.map(str::to_string),
            tokens: vec![
                tok("viewer", AdminRole::Read, "read-secret", None),
                tok("alice", AdminRole::Operate, "op-secret", None),
                tok(
                    "use1-reporter",
                    AdminRole::Report,
                    "use1-secret",
                    Some("use1"),
                ),
            ],
            read_access: read,
            ..AdminSection::default()
        }
    }

    fn bearer(t: &str) -> Vec<u8> {
        format!("Bearer {t}").into_bytes()
    }

    fn lo() -> Option<IpAddr> {
        Some("127.0.0.1".parse().unwrap())
    }

    fn remote() -> Option<IpAddr> {
        Some("192.0.2.7".parse().unwrap())
    }

    #[test]
    fn reads_follow_read_access() {
        let s = section(None, ReadAccess::Loopback);
        assert_eq!(
            authorize_admin(&s, None, lo(), Need::Read).unwrap().name,
            "anonymous"
        );
        assert_eq!(
            authorize_admin(&s, None, remote(), Need::Read),
            Err(Denied::Missing)
        );
        let b = bearer("read-secret");
        assert_eq!(
            authorize_admin(&s, Some(&b), remote(), Need::Read)
                .unwrap()
                .name,
            "viewer"
        );
        let b = bearer("op-secret");
        assert_eq!(
            authorize_admin(&s, Some(&b), remote(), Need::Read)
                .unwrap()
                .name,
            "alice"
        );
        let b = bearer("use1-secret");
        assert!(matches!(
            authorize_admin(&s, Some(&b), remote(), Need::Read),
            Err(Denied::WrongRole { .. })
        ));
        let open = section(None, ReadAccess::Open);
        assert!(authorize_admin(&open, None, remote(), Need::Read).is_ok());
        let closed = section(None, ReadAccess::Token);
        assert_eq!(
            authorize_admin(&closed, None, lo(), Need::Read),
            Err(Denied::Missing)
        );
    }

    #[test]
    fn writes_need_the_operate_role() {
        let s = section(None, ReadAccess::Open);
        let op = bearer("op-secret");
        let p = authorize_admin(&s, Some(&op), remote(), Need::Operate).unwrap();
        assert_eq!(
            (p.name.as_str(), p.role),
            ("alice", Some(AdminRole::Operate))
        );
        for t in ["read-secret", "use1-secret"] {
            let e = authorize_admin(&s, Some(&bearer(t)), lo(), Need::Operate).unwrap_err();
            assert_eq!(e.status(), 403, "{t}");
        }
        assert_eq!(
            authorize_admin(&s, None, lo(), Need::Operate),
            Err(Denied::Missing)
        );
        // One spelling only; a prefix or a longer token is not the token.
        for bad in [
            b"bearer op-secret".to_vec(),
            b"Bearer  op-secret".to_vec(),
            b"Basic op-secret".to_vec(),
            b"op-secret".to_vec(),
            bearer("op-secre"),
            bearer("op-secret2"),
            bearer(""),
        ] {
            assert_eq!(
                authorize_admin(&s, Some(&bad), lo(), Need::Operate),
                Err(Denied::BadToken),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
        let none = AdminSection::default();
        assert_eq!(
            authorize_admin(&none, None, lo(), Need::Operate),
            Err(Denied::NoTokens)
        );
        assert_eq!(
            authorize_admin(&none, Some(&op), lo(), Need::Operate),
            Err(Denied::NoTokens)
        );
    }

    #[test]
    fn a_report_token_reports_as_its_edge_only() {
        let s = section(None, ReadAccess::Loopback);
        let p = authorize_admin(&s, Some(&bearer("use1-secret")), remote(), Need::Report).unwrap();
        assert!(p.may_report_as("use1"));
        assert!(!p.may_report_as("euw1"));
        // Operate tokens do not report.
        let e =
            authorize_admin(&s, Some(&bearer("op-secret")), remote(), Need::Report).unwrap_err();
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn the_deprecated_token_operates_and_reports_as_any_edge() {
        let s = section(Some("legacy-secret"), ReadAccess::Token);
        let b = bearer("legacy-secret");
        for need in [Need::Read, Need::Operate, Need::Report] {
            let p = authorize_admin(&s, Some(&b), remote(), need).unwrap();
            assert_eq!(p.name, LEGACY_NAME);
        }
        let p = authorize_admin(&s, Some(&b), remote(), Need::Report).unwrap();
        assert!(p.may_report_as("use1") && p.may_report_as("anything"));
        // The new tokens still work beside it.
        assert!(authorize_admin(&s, Some(&bearer("op-secret")), remote(), Need::Operate).is_ok());
    }
}
