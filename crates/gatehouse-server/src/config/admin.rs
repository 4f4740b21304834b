//! The `admin` section: the admin account's password hash, token signing keys (current and
//! previous), token lifetime and claims, impersonation, and the sign-in allow-list.

use std::time::Duration;

use secrecy::{SecretSlice, SecretString};

use super::Reader;

/// The admin account.
#[derive(Debug)]
pub struct AdminConfig {
    /// bcrypt hash of the admin password (cost at least 10).
    pub password_hash: SecretString,
    /// HS256 key for admin tokens.
    pub token_signing_key: SecretSlice<u8>,
    /// The key used before the last rotation (`admin.previousTokenSigningKey`): tokens it
    /// signed (named by their `kid`) are accepted until they expire; new tokens never use it.
    pub previous_token_signing_key: Option<SecretSlice<u8>>,
    /// Lifetime of admin tokens (default 8h, at most 24h).
    pub token_ttl: Duration,
    /// Admin tokens issued before this instant (unix seconds) are refused
    /// (`admin.tokensNotBefore`, RFC 3339).
    pub tokens_not_before: Option<i64>,
    /// `iss` of admin tokens (default `gatehouse-admin`).
    pub token_issuer: String,
    /// `aud` of admin tokens (default `gatehouse`).
    pub token_audience: String,
    /// The Kubernetes user the admin acts as (default `gatehouse:admin`).
    pub impersonate_user: String,
    /// The Kubernetes groups the admin acts with (default `[gatehouse:admins]`).
    pub impersonate_groups: Vec<String>,
    /// Client networks allowed to use `POST /v1/admin/login` and the UI's admin form
    /// (`admin.loginAllowedCidrs`); every address when empty.
    pub login_allowed_cidrs: Vec<ipnet::IpNet>,
}

impl AdminConfig {
    /// True when `peer` may sign in as the admin (the allow-list is empty or holds it).
    pub fn login_allowed_from(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.login_allowed_cidrs.is_empty()
            || self.login_allowed_cidrs.iter().any(|n| n.contains(&peer))
    }
}

pub(super) fn read_admin(r: &mut Reader<'_>) -> Option<AdminConfig> {
    use gatehouse_core::admin::{MAX_TTL_SECS, MIN_BCRYPT_COST, MIN_KEY_LEN};
    let enabled = r
        .bool("admin.enabled", Some("ADMIN_ACCOUNT_ENABLED"))
        .unwrap_or(false);
    let before = r.problems.len();
    let hash = r.secret("admin.passwordHash", Some("ADMIN_ACCOUNT_PASSWORD_HASH"));
    let hash_failed = r.problems.len() > before;
    let before = r.problems.len();
    let key = r.secret(
        "admin.tokenSigningKey",
        Some("ADMIN_ACCOUNT_TOKEN_SIGNING_KEY"),
    );
    let key_failed = r.problems.len() > before;
    let previous_key = r.secret("admin.previousTokenSigningKey", None);
    let token_ttl_key = if r.env.get("ADMIN_ACCOUNT_TOKEN_TTL").is_some() {
        "ADMIN_ACCOUNT_TOKEN_TTL"
    } else {
        "admin.tokenTtl"
    };
    let token_ttl = r
        .duration("admin.tokenTtl", Some("ADMIN_ACCOUNT_TOKEN_TTL"))
        .unwrap_or(Duration::from_secs(gatehouse_core::admin::DEFAULT_TTL_SECS));
    let not_before = r.string("admin.tokensNotBefore", None).and_then(|s| {
        r.parse_with("admin.tokensNotBefore", &s, |s| {
            let t = humantime::parse_rfc3339(s.trim()).map_err(|e| {
                format!("expected an RFC 3339 time in UTC such as 2026-01-31T09:00:00Z ({e})")
            })?;
            let now = std::time::SystemTime::now();
            if t > now + Duration::from_secs(60) {
                return Err("is in the future: every admin token, new ones included, would be refused until then; use the current time (`date -u +%Y-%m-%dT%H:%M:%SZ`) to revoke the tokens issued so far".to_owned());
            }
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "must be after 1970".to_owned())?
                .as_secs();
            Ok(i64::try_from(secs).unwrap_or(i64::MAX))
        })
    });
    let token_issuer = r
        .string("admin.tokenIssuer", Some("ADMIN_ACCOUNT_TOKEN_ISSUER"))
        .unwrap_or_else(|| "gatehouse-admin".to_owned());
    let token_audience = r
        .string("admin.tokenAudience", Some("ADMIN_ACCOUNT_TOKEN_AUDIENCE"))
        .unwrap_or_else(|| "gatehouse".to_owned());
    let impersonate_user = r
        .string("admin.impersonate.user", None)
        .unwrap_or_else(|| "gatehouse:admin".to_owned());
    let impersonate_groups = r
        .list("admin.impersonate.groups", None)
        .unwrap_or_else(|| vec!["gatehouse:admins".to_owned()]);
    let allow_system = r
        .bool("admin.allowSystemImpersonation", None)
        .unwrap_or(false);
    let cidrs = r.list("admin.loginAllowedCidrs", None).unwrap_or_default();
    let mut login_allowed_cidrs = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.trim();
        let parsed = c
            .parse::<ipnet::IpNet>()
            .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => login_allowed_cidrs.push(n.trunc()),
            Err(_) => r.problem(
                &format!("admin.loginAllowedCidrs[{i}]"),
                &format!("{c:?} is not a network in CIDR notation, such as 10.0.0.0/8 or fd00::/8"),
            ),
        }
    }
    if !enabled {
        return None;
    }
    if token_ttl.is_zero() || token_ttl.as_secs() > MAX_TTL_SECS {
        r.problem(
            token_ttl_key,
            "must be more than 0 and at most 24h: an admin token cannot be revoked one by one, so its lifetime bounds how long a leaked one works (sign in again for a new one)",
        );
    }
    // Go trims header values, so ` system:masters` would reach the kube-apiserver as
    // `system:masters`: names with surrounding whitespace or control characters are refused.
    for name in std::iter::once(&impersonate_user).chain(&impersonate_groups) {
        if name.trim() != name || name.is_empty() || name.chars().any(char::is_control) {
            r.problem(
                "admin.impersonate",
                &format!("{name:?} is not a usable Kubernetes user or group name (empty, surrounding whitespace or control characters)"),
            );
        }
    }
    if !allow_system {
        let system: Vec<&str> = std::iter::once(&impersonate_user)
            .chain(&impersonate_groups)
            .map(String::as_str)
            .filter(|n| n.starts_with("system:"))
            .collect();
        if !system.is_empty() {
            r.problem(
                "admin.impersonate",
                &format!(
                    "names Kubernetes system identities ({}): `system:` users and groups (system:masters bypasses RBAC entirely, and no RBAC rule can limit it) are refused unless admin.allowSystemImpersonation is true; prefer a group of your own such as gatehouse:admins bound to the ClusterRole the admin needs",
                    system.join(", ")
                ),
            );
        }
    }
    let hash = match hash {
        Some(h) if gatehouse_core::admin::is_bcrypt_hash(h.trim()) => {
            let h = h.trim().to_owned();
            match gatehouse_core::admin::bcrypt_cost(&h) {
                Some(cost) if cost >= MIN_BCRYPT_COST => {}
                cost => r.problem(
                    "admin.passwordHash",
                    &format!(
                        "uses bcrypt cost {}, below the minimum of {MIN_BCRYPT_COST}: a low cost makes password guessing cheap; make a new hash with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`",
                        cost.map_or_else(|| "?".to_owned(), |c| c.to_string())
                    ),
                ),
            }
            h
        }
        Some(_) => {
            r.problem("admin.passwordHash", "is not a bcrypt hash (`$2a$`/`$2b$`/`$2y$`, 60 characters); make one with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`");
            return None;
        }
        None if hash_failed => return None,
        None => {
            r.problem("admin.passwordHash", "required when admin is enabled (or passwordHashFile, or env ADMIN_ACCOUNT_PASSWORD_HASH)");
            return None;
        }
    };
    let previous_token_signing_key = match previous_key {
        Some(k) if k.trim().len() >= MIN_KEY_LEN => {
            Some(SecretSlice::from(k.trim().as_bytes().to_vec()))
        }
        Some(_) => {
            r.problem(
                "admin.previousTokenSigningKey",
                "must be at least 32 bytes (the key that was admin.tokenSigningKey before the rotation)",
            );
            None
        }
        None => None,
    };
    let key = match key {
        Some(k) if k.trim().len() >= MIN_KEY_LEN => k.trim().as_bytes().to_vec(),
        Some(_) => {
            r.problem(
                "admin.tokenSigningKey",
                "must be at least 32 bytes; make one with `openssl rand -hex 32`",
            );
            return None;
        }
        None if key_failed => return None,
        None => {
            r.problem("admin.tokenSigningKey", "required when admin is enabled (or tokenSigningKeyFile, or env ADMIN_ACCOUNT_TOKEN_SIGNING_KEY)");
            return None;
        }
    };
    Some(AdminConfig {
        password_hash: SecretString::from(hash),
        token_signing_key: SecretSlice::from(key),
        previous_token_signing_key,
        token_ttl,
        tokens_not_before: not_before,
        token_issuer,
        token_audience,
        impersonate_user,
        impersonate_groups,
        login_allowed_cidrs,
    })
}
