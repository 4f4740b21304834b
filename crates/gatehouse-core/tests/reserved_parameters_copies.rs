//! The reserved OAuth/OIDC parameter names are defined once, in
//! `gatehouse_core::authorize::RESERVED_PARAMETERS`. The Helm chart has to repeat them (a
//! template cannot read Rust), and `scripts/helm-test` reads the chart's list; this test fails
//! when the chart's copy, or the list shown in docs/helm.md, differs from the Rust one, or when
//! `scripts/helm-test` grows a copy of its own. Hermetic: it reads files of the repository.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use gatehouse_core::authorize::RESERVED_PARAMETERS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The quoted names of `{{- list "a" "b" ... | toJson }}` inside the chart's
/// `gatehouse.reservedParameters` definition.
fn chart_list(helpers: &str) -> Vec<String> {
    let start = helpers
        .find(r#"{{- define "gatehouse.reservedParameters" -}}"#)
        .expect("the chart defines gatehouse.reservedParameters in templates/_helpers.tpl");
    let body = &helpers[start..];
    let body = &body[..body.find("{{- end }}").expect("the definition ends")];
    let list = body
        .split_once("list ")
        .and_then(|(_, rest)| rest.split_once("| toJson"))
        .map(|(list, _)| list)
        .expect("the definition is `list \"...\" ... | toJson`");
    list.split_whitespace()
        .map(|w| {
            w.strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{w:?} is not a quoted name"))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_charts_reserved_parameters_are_the_rust_list() {
    let helpers = read("charts/gatehouse/templates/_helpers.tpl");
    assert_eq!(
        chart_list(&helpers),
        RESERVED_PARAMETERS,
        "charts/gatehouse/templates/_helpers.tpl (gatehouse.reservedParameters) differs from gatehouse_core::authorize::RESERVED_PARAMETERS"
    );
}

#[test]
fn the_list_in_the_helm_docs_is_the_rust_list() {
    let doc = read("docs/helm.md");
    let shown: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.split_once("(reserved: "))
        .map(|(_, rest)| rest.trim_end().trim_end_matches(')'))
        .collect();
    assert!(!shown.is_empty(), "docs/helm.md no longer shows the list");
    for list in shown {
        assert_eq!(
            list,
            RESERVED_PARAMETERS.join(", "),
            "docs/helm.md shows another list"
        );
    }
}

#[test]
fn helm_test_reads_the_list_from_the_chart_and_keeps_no_copy() {
    let script = read("scripts/helm-test");
    assert!(
        script.contains("gatehouse.reservedParameters"),
        "scripts/helm-test no longer reads the names from the chart"
    );
    // Names that only a copy of the list would spell out (the short ones, such as `state`,
    // appear in other checks).
    for name in ["response_type", "code_challenge_method", "request_uri"] {
        assert!(
            !script.contains(name),
            "scripts/helm-test spells out {name:?}: read the list from the chart instead"
        );
    }
}

#[test]
fn the_chart_parser_reads_a_list_and_sees_a_difference() {
    let tpl = "{{- define \"gatehouse.reservedParameters\" -}}\n{{- list \"a\" \"b\" | toJson }}\n{{- end }}\n";
    assert_eq!(chart_list(tpl), ["a", "b"]);
    assert_ne!(chart_list(tpl), RESERVED_PARAMETERS);
}
