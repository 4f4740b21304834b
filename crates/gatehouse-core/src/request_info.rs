//! What a Kubernetes API request asks for, read from its method, path and query by the
//! kube-apiserver's own rule (`RequestInfoFactory.NewRequestInfo` in
//! `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`, v0.34). Used to pick the
//! namespace's ServiceAccount and to phrase SubjectAccessReviews; the kube-apiserver still
//! authorizes the real request.
//!
//! # Security
//! gatehouse and the kube-apiserver read the same bytes here, so this module follows the
//! kube-apiserver's rule step by step rather than a tidier one of its own: were the two to
//! read a different namespace, resource or verb from one request, gatehouse would review (and
//! pick a ServiceAccount for) another request than the one the kube-apiserver then serves.
//! - The path is percent-decoded first, as Go's `URL.Path` is (`%2F` becomes `/` and splits a
//!   segment); an escape Go would refuse stays as it is (the kube-apiserver answers 400 to it).
//! - Segments are split on every `/` after trimming the outer ones, empty segments included
//!   (`/api/v1//pods` has an empty resource and the name `pods`, as for the kube-apiserver).
//! - `watch` and `proxy` as the first segment after the version are verbs; `status` and
//!   `finalize` after a namespace's name are its subresources; only the third part is the
//!   subresource; only `GET`/`HEAD` without a name become `list` or `watch`, and the `watch`
//!   parameter is true unless it is `0` or `false` (any case); `fieldSelector=metadata.name=x`
//!   names the object of a list or watch; a method outside the REST verbs has the empty verb.
//! - Not followed: the kube-apiserver drops the field-selector name when another list option
//!   (a label selector, a limit) does not parse; gatehouse keeps it. Either way the review is
//!   of a request at least as narrow as the real one, and the kube-apiserver authorizes that.

/// The attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// True for `/api/...` and `/apis/...` requests that name a resource.
    pub is_resource_request: bool,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, ...).
    pub verb: String,
    /// API group (`""` for the core group).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`log`, `exec`, `status`, ...).
    pub subresource: String,
    /// Object name, when the path (or a `metadata.name` field selector) names one.
    pub name: String,
    /// Namespace, when the request is namespaced.
    pub namespace: Option<String>,
    /// The request path, percent-decoded as the kube-apiserver reads it.
    pub path: String,
}

/// Parses a request. `path` is the raw (percent-encoded) path, `query` the raw query string
/// without `?`.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
    let path = decode_path(path);
    let mut info = RequestInfo {
        verb: method.to_ascii_lowercase(),
        path: path.clone(),
        ..RequestInfo::default()
    };
    let all: Vec<&str> = path.trim_matches('/').split('/').collect();
    if all.len() < 3 {
        return info;
    }
    let mut parts: &[&str] = match all[0] {
        "api" => &all[1..],
        "apis" if all.len() >= 4 => {
            info.api_group = all[1].to_owned();
            &all[2..]
        }
        _ => return info,
    };
    info.is_resource_request = true;
    info.api_version = parts[0].to_owned();
    parts = &parts[1..];
    let via_path_prefix = matches!(parts[0], "watch" | "proxy");
    if via_path_prefix {
        info.verb = parts[0].to_owned();
        if parts.len() < 2 {
            // The kube-apiserver refuses this request ("unable to determine kind and
            // namespace"); nothing more to read.
            return info;
        }
        parts = &parts[1..];
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }
    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = Some(parts[1].to_owned());
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    if let Some(resource) = parts.first() {
        info.resource = (*resource).to_owned();
    }
    if let Some(name) = parts.get(1) {
        info.name = (*name).to_owned();
    }
    if let Some(sub) = parts.get(2)
        && info.verb != "proxy"
    {
        info.subresource = (*sub).to_owned();
    }
    if info.name.is_empty() && info.verb == "get" {
        let values = query_values(query.unwrap_or(""));
        let watch = values
            .iter()
            .find(|(k, _)| k == "watch")
            .is_some_and(|(_, v)| v != "0" && !v.eq_ignore_ascii_case("false"));
        info.verb = if watch { "watch" } else { "list" }.to_owned();
        if let Some((_, selector)) = values.iter().find(|(k, _)| k == "fieldSelector")
            && let Some(name) = field_selector_name(selector)
            && is_valid_path_segment_name(&name)
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        "deletecollection".clone_into(&mut info.verb);
    }
    if info.namespace.as_deref() == Some("") {
        info.namespace = None;
    }
    info
}

/// Percent-decodes a path as Go's `url.PathUnescape` does; an invalid escape leaves the path
/// as it is (Go refuses such a request outright, so what is read from it does not matter).
fn decode_path(path: &str) -> String {
    match unescape(path, false) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => path.to_owned(),
    }
}

/// `%XX` decoding; `plus_is_space` for query components (Go's `QueryUnescape`). `None` on an
/// invalid escape.
fn unescape(text: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = char::from(hex[0]).to_digit(16)?;
                let lo = char::from(hex[1]).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The query's pairs as Go's `url.ParseQuery` keeps them: split on `&`, pairs holding `;` or a
/// bad escape dropped, `+` as a space.
fn query_values(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = String::from_utf8(unescape(k, true)?).ok()?;
            let v = String::from_utf8(unescape(v, true)?).ok()?;
            Some((k, v))
        })
        .collect()
}

/// The value a field selector requires of `metadata.name` (`metadata.name=x` or `==x` among
/// its comma-separated terms), as `fields.ParseSelector` and `RequiresExactMatch` read it.
/// `None` when the selector does not parse or names no object.
fn field_selector_name(selector: &str) -> Option<String> {
    let mut found = None;
    for term in split_unescaped(selector, ',') {
        if term.is_empty() {
            continue;
        }
        let (field, op, value) = split_term(&term)?;
        let value = unescape_selector_value(value)?;
        if field == "metadata.name" && op != "!=" && found.is_none() {
            found = Some(value);
        }
    }
    found
}

/// Splits on `sep` where it is not escaped by a backslash; escapes are kept.
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    terms.push(current);
    terms
}

/// A term's field, operator and (still escaped) value, at the first operator (`!=`, `==`,
/// `=`, tried in that order at each position; escapes are not looked at, as in `splitTerm`).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Undoes `\\`, `\,` and `\=`; any other escape makes the selector invalid.
fn unescape_selector_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                e @ ('\\' | ',' | '=') => out.push(e),
                _ => return None,
            }
        } else if c == ',' || c == '=' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// `path.IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_list_and_get() {
        let i = parse("GET", "/api/v1/namespaces/team-a/configmaps", None);
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.namespace.as_deref(),
                i.api_group.as_str()
            ),
            ("list", "configmaps", Some("team-a"), "")
        );
        let i = parse(
            "GET",
            "/apis/apps/v1/namespaces/x/deployments/web/scale",
            None,
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("get", "apps", "web", "scale")
        );
    }

    #[test]
    fn watch_forms() {
        assert_eq!(
            parse("GET", "/api/v1/namespaces/a/pods", Some("watch=true&rv=1")).verb,
            "watch"
        );
        assert_eq!(
            parse("GET", "/api/v1/watch/namespaces/a/pods", None).verb,
            "watch"
        );
        assert_eq!(
            parse("GET", "/api/v1/watch/namespaces/a/pods", None)
                .namespace
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn cluster_scoped_and_namespace_objects() {
        let i = parse(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
        );
        assert_eq!((i.verb.as_str(), i.namespace), ("create", None));
        let i = parse("GET", "/api/v1/namespaces/team-a", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_deref()),
            ("namespaces", "team-a", Some("team-a"))
        );
        assert_eq!(parse("GET", "/api/v1/namespaces", None).verb, "list");
        assert_eq!(
            parse("DELETE", "/api/v1/namespaces/a/pods", None).verb,
            "deletecollection"
        );
    }

    #[test]
    fn non_resource_paths() {
        for p in [
            "/version",
            "/api",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/api/v1",
            "/openapi/v3",
        ] {
            let i = parse("GET", p, None);
            assert!(!i.is_resource_request, "{p}");
            assert_eq!(i.verb, "get");
        }
    }

    #[test]
    fn follows_the_kube_apiservers_rule_where_a_tidier_one_would_differ() {
        // Percent-decoded first: %2F splits a segment, %61 is "a".
        let i = parse("GET", "/api/v1/namespaces/te%61m-a/pods", None);
        assert_eq!(i.namespace.as_deref(), Some("team-a"));
        assert_eq!(i.path, "/api/v1/namespaces/team-a/pods");
        let i = parse("GET", "/api/v1/namespaces/a%2Fb/pods", None);
        assert_eq!(
            (i.namespace.as_deref(), i.resource.as_str()),
            (Some("a"), "b")
        );
        // Empty segments count.
        let i = parse("GET", "/api/v1//pods", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.verb.as_str()),
            ("", "pods", "get")
        );
        // A namespace's own subresources.
        let i = parse("PUT", "/api/v1/namespaces/a/status", None);
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str(),
                i.namespace.as_deref()
            ),
            ("namespaces", "a", "status", Some("a"))
        );
        let i = parse("PUT", "/api/v1/namespaces/a/finalize", None);
        assert_eq!(
            (i.resource.as_str(), i.subresource.as_str()),
            ("namespaces", "finalize")
        );
        // Only the third part is the subresource.
        let i = parse("GET", "/api/v1/namespaces/a/pods/p/proxy/x/y", None);
        assert_eq!(i.subresource, "proxy");
        // The proxy verb has no subresource.
        let i = parse("GET", "/api/v1/proxy/namespaces/a/pods/p/x", None);
        assert_eq!(
            (i.verb.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("proxy", "p", "")
        );
        // watch=<anything but 0 or false> is a watch; with a name it is a get.
        for q in [
            "watch=t",
            "watch=TRUE",
            "watch=yes",
            "watch=",
            "watch",
            "watch=1&watch=0",
        ] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).verb, "watch", "{q}");
        }
        for q in ["watch=0", "watch=False", "watch=0&watch=1", "x=1"] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).verb, "list", "{q}");
        }
        assert_eq!(
            parse("GET", "/api/v1/namespaces/a/pods/p", Some("watch=true")).verb,
            "get"
        );
        // A metadata.name field selector names the object of a list or watch.
        let i = parse(
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("fieldSelector=metadata.name%3Dweb&watch=1"),
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "web"));
        let i = parse(
            "GET",
            "/api/v1/pods",
            Some("fieldSelector=status.phase!%3DRunning,metadata.name%3D%3Dx"),
        );
        assert_eq!(i.name, "x");
        for sel in [
            "metadata.name!%3Dx",
            "metadata.name%3Da%5Cb",
            "metadata.name%3D..",
            "metadata.name%3Da%25b",
        ] {
            assert_eq!(
                parse("GET", "/api/v1/pods", Some(&format!("fieldSelector={sel}"))).name,
                "",
                "{sel}"
            );
        }
        // Methods outside the REST verbs have the empty verb on resources; lower case elsewhere.
        assert_eq!(parse("CONNECT", "/api/v1/pods", None).verb, "");
        assert_eq!(parse("get", "/api/v1/pods", None).verb, "");
        assert_eq!(parse("TRACE", "/version", None).verb, "trace");
        // A special verb with nothing after it reads nothing more.
        let i = parse("GET", "/api/v1/watch", None);
        assert_eq!((i.verb.as_str(), i.resource.as_str()), ("watch", ""));
    }
}
