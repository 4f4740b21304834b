//! Fuzz body: merging gatehouse's context into an existing kubeconfig
//! ([`kubeconfig::parse_yaml`], [`kubeconfig::merge`], [`kubeconfig::to_yaml`]), the way
//! `gatehouse kubeconfig` and `gatehouse login --kubeconfig` rewrite a user's file.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the file holds (odd YAML, aliases, wrong types);
//! - after the merge there is exactly one `gatehouse` cluster, user and context, and they are
//!   gatehouse's;
//! - every other named cluster, user and context of the file is kept unchanged, in order;
//! - the current context is kept unless it was unset or the merge was asked to set it;
//! - the written YAML reads back as the merged document.
//!
//! Input: the first byte's low bit is `set_current`; the rest is the kubeconfig text.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use std::path::Path;

use gatehouse::cli::cache::Backend;
use gatehouse::cli::kubeconfig;
use serde_json::Value;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let set_current = first & 1 == 1;
    let Ok(original) = kubeconfig::parse_yaml(text, Path::new("fuzz")) else {
        return;
    };
    let server = "https://gatehouse.example:8443";
    let parts = kubeconfig::entries(server, Some("Q0EK"), None, Backend::File);
    let mut doc = original.clone();
    kubeconfig::merge(&mut doc, parts.clone(), set_current);
    for (key, ours) in [
        ("clusters", &parts.0),
        ("users", &parts.1),
        ("contexts", &parts.2),
    ] {
        let list = doc[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is not a list"));
        let named: Vec<&Value> = list
            .iter()
            .filter(|e| e.get("name").and_then(Value::as_str) == Some("gatehouse"))
            .collect();
        let before = original.get(key).and_then(Value::as_array).map_or(0, |l| {
            l.iter()
                .filter(|e| e.get("name") == ours[0].get("name"))
                .count()
        });
        // A file that already held several `gatehouse` entries keeps the later ones; the first
        // becomes gatehouse's.
        assert!(
            named.len() == before.max(1),
            "{key}: {} gatehouse entries, {before} before",
            named.len()
        );
        assert_eq!(
            named[0], &ours[0],
            "{key}: the gatehouse entry is not gatehouse's"
        );
        let others = |l: &[Value]| -> Vec<Value> {
            l.iter()
                .filter(|e| e.get("name") != ours[0].get("name"))
                .cloned()
                .collect()
        };
        if let Some(old) = original.get(key).and_then(Value::as_array) {
            assert_eq!(others(list), others(old), "{key}: other entries changed");
        }
    }
    let current = doc.get("current-context").and_then(Value::as_str);
    let had = original
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    match (set_current, had) {
        (false, Some(c)) => assert_eq!(current, Some(c), "the current context changed"),
        _ => assert_eq!(current, Some("gatehouse")),
    }
    let written = kubeconfig::to_yaml(&doc).unwrap_or_else(|e| panic!("cannot write: {e}"));
    let back = kubeconfig::parse_yaml(&written, Path::new("fuzz"))
        .unwrap_or_else(|e| panic!("the written file does not read back: {e}\n{written}"));
    assert_eq!(back, doc, "the written file reads back differently");
}
