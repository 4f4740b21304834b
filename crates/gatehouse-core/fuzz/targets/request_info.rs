//! Fuzz body: reading what a Kubernetes API request asks for ([`request_info::parse`]) from a
//! method, a path and a query.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the path;
//! - a namespace, when read, is a non-empty segment of the (percent-decoded) path right after
//!   a `namespaces` segment, never a piece of the query;
//! - only `/api/...` and `/apis/...` paths are resource requests;
//! - the verb is lower case; on a resource `list` comes from GET or HEAD alone, and `watch`
//!   from them or the legacy `/watch/` path prefix;
//! - a query is refused for its size exactly when it has more than 10,000 parameters (Go's
//!   count: `&` + 1), and a refusal for the path only when the path has a `%` escape;
//! - an object name is a valid path segment name (never `.`, `..`, nor holding `/` or `%`).
//!
//! The first byte picks the method; the rest is `path[?query]`.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use gatehouse_core::request_info;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "get", "WaTcH",
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let method = METHODS[usize::from(*first) % METHODS.len()];
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let too_many = query.is_some_and(|q| q.matches('&').count() + 1 > 10_000);
    let info = match request_info::parse(method, path, query) {
        Ok(info) => info,
        Err(refused) => {
            assert_eq!(
                refused == request_info::Unreadable::TooManyParameters,
                too_many,
                "{refused:?} for {path:?}"
            );
            if refused == request_info::Unreadable::PathNotUtf8 {
                assert!(path.contains('%'), "{refused:?} for {path:?}");
            }
            return;
        }
    };
    assert!(!too_many, "a query of more than 10,000 parameters read");
    if info.is_resource_request && !info.name.is_empty() && info.verb == "list" {
        assert!(
            !matches!(info.name.as_str(), "." | "..") && !info.name.contains(['/', '%']),
            "name {:?} from {path:?}",
            info.name
        );
    }
    assert_eq!(info.verb, info.verb.to_ascii_lowercase());
    let segments: Vec<&str> = info.path.split('/').filter(|s| !s.is_empty()).collect();
    if info.is_resource_request {
        assert!(
            matches!(segments.first(), Some(&"api" | &"apis")),
            "a resource request outside /api and /apis: {path:?}"
        );
    }
    if let Some(ns) = &info.namespace {
        assert!(
            !ns.is_empty() && !ns.contains('/'),
            "namespace {ns:?} from {path:?}"
        );
        let named = segments
            .windows(2)
            .any(|w| w[0] == "namespaces" && w[1] == ns.as_str());
        assert!(named, "namespace {ns:?} is not named in the path {path:?}");
    }
    // Outside resources the verb is the method in lower case (any method, as for the
    // kube-apiserver), so only resource requests say where list and watch come from.
    let get = matches!(method, "GET" | "HEAD") || !info.is_resource_request;
    if info.verb == "list" {
        assert!(get, "list from {method}");
    }
    if info.verb == "watch" {
        // The kube-apiserver's own split: empty segments count (`/api//watch/...` has an
        // empty version and the `watch` prefix).
        let all: Vec<&str> = info.path.trim_matches('/').split('/').collect();
        let prefix = match all.first() {
            Some(&"api") => all.get(2) == Some(&"watch"),
            Some(&"apis") => all.get(3) == Some(&"watch"),
            _ => false,
        };
        assert!(get || prefix, "watch from {method} {path:?}");
    }
}
