//! `[admin]`: the admin HTTP API, its `[[admin.tokens]]` and TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::RouterConfig;
use crate::config::common::*;
use crate::config::ConfigError;

/// `[admin]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Admin HTTP API address. Default `127.0.0.1:8053`.
    pub listen: SocketAddr,
    /// Deprecated single token: still accepted as an `operate` token that may also post
    /// reports as any edge (a warning is logged at start and reload). Use `[[admin.tokens]]`.
    /// Also the default of `purge_token`. Unset by default.
    pub token: Option<String>,
    /// Role tokens: each `{ name, role, token }`, `role` one of `read` (edges, services,
    /// explain, metrics), `operate` (read + drain, undrain, reload, purge) or `report` (posts
    /// reports as its `edge` only). Empty by default.
    pub tokens: Vec<AdminToken>,
    /// Who may read without a token: `loopback` (clients on 127.0.0.0/8 or ::1), `open`
    /// (everyone) or `token` (nobody; a `read` or `operate` token is needed). `/healthz` and the
    /// status page's files are always open. Default `loopback`.
    pub read_access: ReadAccess,
    /// The bearer token the router sends to the edges' purge API (`admin_url`) when it fans a
    /// purge out. Default: `token`.
    pub purge_token: Option<String>,
    /// PEM certificate chain: with `tls_key`, the admin listener speaks HTTPS only. Unset by
    /// default (plain HTTP). Relative to the config file's directory.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Unset by default.
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body. Default 1 MiB.
    pub max_body_size: bytesize::ByteSize,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            token: None,
            tokens: Vec::new(),
            read_access: ReadAccess::Loopback,
            purge_token: None,
            tls_cert: None,
            tls_key: None,
            max_body_size: bytesize::ByteSize::mib(1),
        }
    }
}

/// `[[admin.tokens]]`: one named credential with one role.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Name shown in the audit log (never the secret). Required, unique.
    pub name: String,
    /// `read`, `operate` or `report`.
    pub role: AdminRole,
    /// The secret, sent as `Authorization: Bearer <token>`. Required, unique.
    pub token: String,
    /// For `role = "report"`: the one `[[edges]]` id this credential may report as.
    #[serde(default)]
    pub edge: Option<String>,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Reads (edges, services, explain, metrics).
    Read,
    /// Reads and operator writes (drain, undrain, reload, purge).
    Operate,
    /// `POST /api/v1/reports` as one edge.
    Report,
}

impl AdminRole {
    /// The role's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Read => "read",
            AdminRole::Operate => "operate",
            AdminRole::Report => "report",
        }
    }
}

/// `admin.read_access`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    /// Loopback clients read without a token.
    #[default]
    Loopback,
    /// Everyone reads without a token.
    Open,
    /// Reads need a `read` or `operate` token.
    Token,
}

/// The `[admin]` rules of [`RouterConfig`]'s `validate` (report tokens name `[[edges]]`).
pub(super) fn check(c: &RouterConfig) -> Result<(), ConfigError> {
    if let Some(t) = &c.admin.token {
        if t.trim().is_empty() {
            return Err(ConfigError::new(
                "admin.token",
                "must not be empty (leave unset to refuse all writes)",
            ));
        }
    }
    if c.admin
        .purge_token
        .as_ref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return Err(ConfigError::new("admin.purge_token", "must not be empty"));
    }
    // Without [bus], purges are posted to every edge's admin_url with this token; without one
    // each edge refuses them (401), every purge would fail.
    let fans_out = c.bus.is_none() && c.edges.iter().any(|e| e.admin_url.is_some());
    if fans_out && c.admin.purge_token.is_none() && c.admin.token.is_none() {
        return Err(ConfigError::new(
            "admin.purge_token",
            "edges have an admin_url and there is no [bus]: purges are posted to them with \
             this token (the edges' [admin] token); set it",
        ));
    }
    let edges: Vec<&str> = c.edges.iter().map(|e| e.id.as_str()).collect();
    check_tokens_and_tls(
        c.admin.token.as_deref(),
        &c.admin.tokens,
        (c.admin.tls_cert.as_ref(), c.admin.tls_key.as_ref()),
        Some(&edges),
    )
}

/// The `[admin]` token and TLS rules the router's and the edge's admin listeners share:
/// names are identifiers and unique, secrets non-empty and unique (also against the single
/// `admin.token`), `tls_cert` and `tls_key` set together. `report_edges`: the `[[edges]]` ids
/// a `report` token may name; `None` = this listener takes no `report` tokens (the edge's).
pub(crate) fn check_tokens_and_tls(
    legacy: Option<&str>,
    tokens: &[AdminToken],
    (tls_cert, tls_key): (Option<&PathBuf>, Option<&PathBuf>),
    report_edges: Option<&[&str]>,
) -> Result<(), ConfigError> {
    for (i, t) in tokens.iter().enumerate() {
        require_ident(&format!("admin.tokens[{i}].name"), &t.name)?;
        // The audit names of the deprecated token and of token-less reads: a token named so
        // would pass for them (the deprecated token may report as any edge).
        if ["admin.token", "anonymous"].contains(&t.name.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                format!("admin.tokens[{i}].name"),
                format!("`{}` is reserved; choose another name", t.name),
            ));
        }
        if t.token.trim().is_empty() {
            return Err(ConfigError::new(
                format!("admin.tokens[{i}].token"),
                "must not be empty",
            ));
        }
        let same = tokens[..i]
            .iter()
            .map(|o| o.token.as_str())
            .chain(legacy)
            .any(|o| o == t.token);
        if same {
            return Err(ConfigError::new(
                format!("admin.tokens[{i}].token"),
                "is the same secret as another admin token (each credential must be unique)",
            ));
        }
        match (t.role, &t.edge, report_edges) {
            (AdminRole::Report, _, None) => {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].role"),
                    "this admin listener takes `read` or `operate` tokens only",
                ))
            }
            (AdminRole::Report, None, Some(_)) => {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].edge"),
                    "a `report` token needs the id of the edge it reports as",
                ))
            }
            (AdminRole::Report, Some(e), Some(ids)) if !ids.contains(&e.as_str()) => {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].edge"),
                    format!("unknown edge `{e}`"),
                ))
            }
            (AdminRole::Read | AdminRole::Operate, Some(_), _) => {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].edge"),
                    "only a `report` token names an edge",
                ))
            }
            _ => {}
        }
    }
    require_unique(tokens.iter().map(|t| t.name.as_str()), |i| {
        format!("admin.tokens[{i}].name")
    })?;
    match (tls_cert, tls_key) {
        (Some(_), None) => {
            return Err(ConfigError::new(
                "admin.tls_key",
                "must be set when admin.tls_cert is",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "admin.tls_cert",
                "must be set when admin.tls_key is",
            ))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::MIN;
    use super::*;

    #[test]
    fn admin_role_tokens_validate() {
        let edges = "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
                     [[edges]]\nid = \"e1\"\nregion = \"r\"\nipv4 = [\"192.0.2.1\"]\n";
        let c: RouterConfig = crate::config::load_str(MIN).unwrap();
        assert_eq!(c.admin.read_access, ReadAccess::Loopback);
        assert!(c.admin.tokens.is_empty() && c.admin.token.is_none());
        let ok = format!(
            "{MIN}{edges}[[admin.tokens]]\nname = \"ops\"\nrole = \"operate\"\ntoken = \"a\"\n\
             [[admin.tokens]]\nname = \"e1\"\nrole = \"report\"\ntoken = \"b\"\nedge = \"e1\"\n"
        );
        let c: RouterConfig = crate::config::load_str(&ok).unwrap();
        assert_eq!(c.admin.tokens[1].role, AdminRole::Report);
        let token = |fields: &str| {
            format!("{MIN}{edges}[[admin.tokens]]\nname = \"ops\"\nrole = \"operate\"\ntoken = \"a\"\n[[admin.tokens]]\n{fields}")
        };
        for (fields, key) in [
            (
                "name = \"x\"\nrole = \"report\"\ntoken = \"b\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"report\"\ntoken = \"b\"\nedge = \"nope\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \"b\"\nedge = \"e1\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \"a\"",
                "admin.tokens[1].token",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \" \"",
                "admin.tokens[1].token",
            ),
            (
                "name = \"ops\"\nrole = \"read\"\ntoken = \"c\"",
                "admin.tokens[1].name",
            ),
            (
                "name = \"admin.token\"\nrole = \"operate\"\ntoken = \"c\"",
                "admin.tokens[1].name",
            ),
            (
                "name = \"Anonymous\"\nrole = \"read\"\ntoken = \"c\"",
                "admin.tokens[1].name",
            ),
        ] {
            let e = crate::config::load_str::<RouterConfig>(&token(fields)).unwrap_err();
            assert_eq!(e.key, key, "{fields}");
        }
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[admin]\ntls_cert = \"c.pem\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "admin.tls_key");
        // Purge fan-out needs a token to send.
        let fan = format!(
            "{MIN}{}",
            edges.replace("ipv4 =", "admin_url = \"http://192.0.2.1:9081\"\nipv4 =")
        );
        let e = crate::config::load_str::<RouterConfig>(&fan).unwrap_err();
        assert_eq!(e.key, "admin.purge_token");
        assert!(crate::config::load_str::<RouterConfig>(&format!(
            "[admin]\npurge_token = \"p\"\n{fan}"
        ))
        .is_ok());
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[admin]\nread_access = \"sometimes\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "admin.read_access");
    }

    #[test]
    fn the_edge_admin_takes_no_report_tokens() {
        let base = "[edge]\nid = \"e\"\nregion = \"r\"\n[[hosts]]\nname = \"h.test\"\norigin = \"http://127.0.0.1:9\"\n";
        let ok = format!(
            "{base}[admin]\ntokens = [{{ name = \"p\", role = \"read\", token = \"x\" }}]\n"
        );
        assert!(crate::config::load_str::<crate::config::edge::EdgeConfig>(&ok).is_ok());
        let report = format!(
            "{base}[admin]\ntokens = [{{ name = \"p\", role = \"report\", token = \"x\", edge = \"e\" }}]\n"
        );
        let e = crate::config::load_str::<crate::config::edge::EdgeConfig>(&report).unwrap_err();
        assert_eq!(e.key, "admin.tokens[0].role");
        let dup = format!(
            "{base}[admin]\ntoken = \"x\"\ntokens = [{{ name = \"p\", role = \"read\", token = \"x\" }}]\n"
        );
        let e = crate::config::load_str::<crate::config::edge::EdgeConfig>(&dup).unwrap_err();
        assert_eq!(e.key, "admin.tokens[0].token");
        let half = format!("{base}[admin]\ntls_cert = \"c.pem\"\n");
        let e = crate::config::load_str::<crate::config::edge::EdgeConfig>(&half).unwrap_err();
        assert_eq!(e.key, "admin.tls_key");
    }
}
