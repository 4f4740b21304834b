//! Fuzz body: claim rules from ServiceAccount annotations ([`mapping::rules_from_annotations`])
//! and the index built from them ([`mapping::MappingIndex`]).
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the annotations;
//! - every rule comes from an annotation under the prefix, has a non-empty claim name and a
//!   non-empty value, and a per-claim (`claim.<name>`) rule never holds `=` (an LDAP DN split
//!   by the comma list);
//! - every error names an annotation under the prefix;
//! - the index maps a user whose claim equals a rule's value to that ServiceAccount, and a
//!   user whose claims match no rule to nothing (no wildcard, no default).
//!
//! Input: annotations as `key\0value\n` records.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use std::collections::BTreeMap;

use gatehouse_core::mapping::{MappingIndex, ServiceAccountRef, rules_from_annotations};
use serde_json::{Map, Value};

const PREFIX: &str = "gatehouse.dev";

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let annotations: BTreeMap<String, String> = text
        .split('\n')
        .filter_map(|record| record.split_once('\0'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (rules, errors) = rules_from_annotations(PREFIX, &annotations);
    let json_key = format!("{PREFIX}/claims");
    let claim_prefix = format!("{PREFIX}/claim.");
    for (claim, value) in &rules {
        assert!(
            !value.is_empty() || annotations.contains_key(&json_key),
            "empty value"
        );
        let from_json = annotations.contains_key(&json_key);
        let from_claim_form = annotations
            .get(&format!("{claim_prefix}{claim}"))
            .is_some_and(|v| v.split(',').any(|part| part.trim() == value));
        assert!(
            from_json || from_claim_form,
            "rule ({claim:?}, {value:?}) comes from no annotation"
        );
        if !from_json {
            assert!(
                !claim.is_empty() && !value.contains('='),
                "({claim:?}, {value:?})"
            );
        }
    }
    for e in &errors {
        assert!(
            e.key == json_key || e.key.starts_with(&claim_prefix),
            "an error for an annotation outside the prefix: {:?}",
            e.key
        );
    }
    let sa = ServiceAccountRef::new("team-a", "fuzz");
    let mut index = MappingIndex::new();
    index.upsert(sa.clone(), rules.clone());
    for (claim, value) in &rules {
        let mut claims = Map::new();
        claims.insert(claim.clone(), Value::from(value.as_str()));
        assert!(
            index.lookup(&claims).contains(&sa),
            "({claim:?}, {value:?}) does not map"
        );
    }
    let mut stranger = Map::new();
    stranger.insert(
        "sub".to_owned(),
        Value::from("\u{0}nobody-has-this-value\u{0}"),
    );
    if !rules
        .iter()
        .any(|(c, v)| c == "sub" && v == "\u{0}nobody-has-this-value\u{0}")
    {
        assert!(
            index.lookup(&stranger).is_empty(),
            "a user with no matching claim maps"
        );
    }
}
