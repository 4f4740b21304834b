//! Fuzz body: the configuration loader ([`config::parse`]) on any file text, with any value of
//! `OIDC_ADDITIONAL_PARAMETERS`.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the YAML holds (odd types, aliases, deep nesting, huge numbers);
//! - a configuration that loads carries no empty or reserved authorization-request parameter
//!   (static or user-settable): sign-in can never override `state`, `nonce`, `redirect_uri`, ...;
//! - secrets never show: the values given for `oidc.clientSecret`, `session.key` and
//!   `admin.passwordHash` appear neither in the problems a failed load reports nor in the
//!   `--check-config` description of one that loads (unless the same text is also given
//!   where it is no secret: in `OIDC_ADDITIONAL_PARAMETERS`, or under another key).
//!
//! Input: the file text, then `\0`, then the environment value.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use std::collections::HashMap;

use gatehouse_server::config::{self, RESERVED_PARAMETERS};
use serde_json::Value;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env_value) = text.split_once('\0').unwrap_or((text, ""));
    let mut env = HashMap::new();
    if !env_value.is_empty() {
        env.insert(
            "OIDC_ADDITIONAL_PARAMETERS".to_owned(),
            env_value.to_owned(),
        );
    }
    let secrets = secrets_in(file);
    let shown = match config::parse(file, &env) {
        Ok(c) => {
            if let Some(oidc) = &c.oidc {
                for name in oidc
                    .additional_parameters
                    .keys()
                    .chain(oidc.user_parameters.keys())
                {
                    assert!(
                        !name.trim().is_empty(),
                        "an empty parameter name was accepted"
                    );
                    assert!(
                        !RESERVED_PARAMETERS.contains(&name.as_str()),
                        "the reserved parameter {name:?} was accepted"
                    );
                }
            }
            c.describe().to_string()
        }
        Err(e) => e.to_string(),
    };
    for s in secrets {
        // A value also given where it is not a secret (the environment value, which problems
        // quote, or another key of the file) may show through that place.
        if env_value.contains(&s) || file.matches(s.as_str()).count() > 1 {
            continue;
        }
        assert!(
            !shown.contains(&s),
            "a secret value shows in the loader's output"
        );
    }
}

/// The string values given for secret keys, long enough not to appear by chance.
fn secrets_in(file: &str) -> Vec<String> {
    let Ok(Value::Object(root)) = serde_saphyr::from_str::<Value>(file) else {
        return Vec::new();
    };
    [
        ("oidc", "clientSecret"),
        ("session", "key"),
        ("admin", "passwordHash"),
    ]
    .iter()
    .filter_map(|(section, key)| root.get(*section)?.get(*key)?.as_str().map(str::to_owned))
    .filter(|s| s.len() >= 12)
    .collect()
}
