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
//! Where gatehouse cannot be sure to read a request as the kube-apiserver does, [`parse`]
//! refuses it ([`Unreadable`], answered 400 before anything is sent upstream) rather than
//! guess; no Kubernetes client sends such a request.
//! - The path is percent-decoded first, as Go's `URL.Path` is (`%2F` becomes `/` and splits a
//!   segment); an escape Go would refuse stays as it is (the kube-apiserver answers 400 to it).
//!   A path that decodes to bytes that are not UTF-8 (`%FF`) is refused
//!   ([`Unreadable::PathNotUtf8`]): Go keeps those bytes in the namespace or name it reads,
//!   a Rust string cannot hold them, and decoding them lossily (to U+FFFD) would make
//!   `a%FF` and `a%EF%BF%BD` one namespace for gatehouse and two for the kube-apiserver.
//! - Segments are split on every `/` after trimming the outer ones, empty segments included
//!   (`/api/v1//pods` has an empty resource and the name `pods`, as for the kube-apiserver).
//! - `watch` and `proxy` as the first segment after the version are verbs; `status` and
//!   `finalize` after a namespace's name are its subresources; only the third part is the
//!   subresource; only `GET`/`HEAD` without a name become `list` or `watch`; a method outside
//!   the REST verbs has the empty verb.
//! - The query is read as Go's `url.ParseQuery` reads it: split on `&`, pairs holding `;` or
//!   a bad escape dropped, `+` as a space, values kept as bytes whether or not they are UTF-8
//!   (`watch=%FF` is a watch). A query of more than 10,000 parameters (`&` count + 1) is
//!   refused ([`Unreadable::TooManyParameters`]): Go releases since 1.24.12 / 1.25.6 read
//!   *no* parameter of such a query (`ParseQuery` fails, `URL.Query()` ignores the error, so
//!   no watch and no field selector), older ones read them all, and `GODEBUG=
//!   urlmaxqueryparams` moves the limit; gatehouse cannot know which kube-apiserver it fronts,
//!   so it forwards only queries that every one of them reads alike (a kube-apiserver run with
//!   a limit set below 10,000 is not covered).
//! - The list options are decoded as `DecodeParameters` decodes them (the first value of each
//!   parameter): `watch` is false when it is `0` or equals `false` by Go's `strings.EqualFold`
//!   (Unicode simple folding: `fal\u{17F}e`, with U+017F LATIN SMALL LETTER LONG S, is false);
//!   `fieldSelector` is parsed as `fields.ParseSelector` does (terms sorted as strings, so with
//!   two `metadata.name` terms the one sorting first names the object, which must be a valid
//!   path segment name). When decoding fails (a `limit` or `timeoutSeconds` that is not a
//!   base-10 int64, a field selector that does not parse) the kube-apiserver falls back: no
//!   name, and `watch` is false only when its value is `0` or `false` in ASCII case
//!   (`strings.ToLower`, which folds no non-ASCII letter to the letters of `false`); gatehouse
//!   does the same. A field selector that is not UTF-8 is refused
//!   ([`Unreadable::FieldSelectorNotUtf8`]; the name it would give cannot be held).
//! - Not fully followed: label selectors. gatehouse recognises the plain forms (`k`, `!k`,
//!   `k=v`, `k==v`, `k!=v`, comma-separated, with valid label keys and values) as valid and
//!   does not parse the rest (`in (...)`, spaces, ...). With a label selector it does not
//!   recognise, gatehouse keeps the field-selector name the kube-apiserver would drop were the
//!   selector invalid: the review is then of a request narrower than the real one, which the
//!   kube-apiserver authorizes itself and then answers 400 (its list handler decodes the same
//!   options and refuses them). The one reading where this would change the verb (a `watch`
//!   value that is false by Unicode folding but not by ASCII case) is refused with such a
//!   selector ([`Unreadable::AmbiguousWatch`]).

use std::fmt;

/// Go's `url` package's default limit on query parameters (`urlmaxqueryparams`).
pub const MAX_QUERY_PARAMETERS: usize = 10_000;

/// A request gatehouse refuses because it cannot be sure to read it as the kube-apiserver does
/// (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The percent-decoded path is not UTF-8.
    PathNotUtf8,
    /// More than [`MAX_QUERY_PARAMETERS`] query parameters.
    TooManyParameters,
    /// The `fieldSelector` of a list or watch is not UTF-8.
    FieldSelectorNotUtf8,
    /// A `watch` value the kube-apiserver reads as false or true depending on whether a label
    /// selector gatehouse does not parse is valid.
    AmbiguousWatch,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unreadable::PathNotUtf8 => "the percent-decoded request path is not UTF-8",
            Unreadable::TooManyParameters => "the query has more than 10000 parameters",
            Unreadable::FieldSelectorNotUtf8 => "the fieldSelector parameter is not UTF-8",
            Unreadable::AmbiguousWatch => {
                "the watch parameter is neither plainly true nor plainly false"
            }
        })
    }
}

impl std::error::Error for Unreadable {}

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
///
/// # Errors
/// [`Unreadable`] when gatehouse cannot be sure to read the request as the kube-apiserver
/// does; the request is to be refused.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<RequestInfo, Unreadable> {
    let query = query.unwrap_or("");
    if query.matches('&').count() + 1 > MAX_QUERY_PARAMETERS {
        return Err(Unreadable::TooManyParameters);
    }
    let path = decode_path(path)?;
    let mut info = RequestInfo {
        verb: method.to_ascii_lowercase(),
        path: path.clone(),
        ..RequestInfo::default()
    };
    let all: Vec<&str> = path.trim_matches('/').split('/').collect();
    if all.len() < 3 {
        return Ok(info);
    }
    let mut parts: &[&str] = match all[0] {
        "api" => &all[1..],
        "apis" if all.len() >= 4 => {
            info.api_group = all[1].to_owned();
            &all[2..]
        }
        _ => return Ok(info),
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
            return Ok(info);
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
        let (watch, name) = list_options(&query_values(query))?;
        info.verb = if watch { "watch" } else { "list" }.to_owned();
        if let Some(name) = name
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
    Ok(info)
}

/// Whether a list is a watch, and the name its field selector requires, as
/// `ParameterCodec.DecodeParameters` into `ListOptions` and `NewRequestInfo`'s fallback read
/// them (see the module documentation).
fn list_options(values: &[(Vec<u8>, Vec<u8>)]) -> Result<(bool, Option<String>), Unreadable> {
    let first = |key: &[u8]| {
        values
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v.as_slice())
    };
    let watch_value = first(b"watch");
    // What decoding makes of `watch`, and what the fallback after a failed decoding does.
    let watch_decoded = watch_value.is_some_and(|v| !(v == b"0" || go_equal_fold(v, "false")));
    let watch_fallback =
        watch_value.is_some_and(|v| !(v == b"0" || v.eq_ignore_ascii_case(b"false")));
    let int_fails = |key: &[u8]| {
        first(key).is_some_and(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .is_none()
        })
    };
    let field = match first(b"fieldSelector") {
        None => Ok(None),
        Some(selector) => {
            let selector =
                std::str::from_utf8(selector).map_err(|_| Unreadable::FieldSelectorNotUtf8)?;
            field_selector_name(selector).ok_or(()).map(Some)
        }
    };
    let failed = int_fails(b"limit") || int_fails(b"timeoutSeconds") || field.is_err();
    if failed {
        return Ok((watch_fallback, None));
    }
    let name = field.ok().flatten().flatten();
    let labels_valid = first(b"labelSelector").is_none_or(plain_label_selector_is_valid);
    if !labels_valid && watch_decoded != watch_fallback {
        return Err(Unreadable::AmbiguousWatch);
    }
    Ok((watch_decoded, name))
}

/// Go's `strings.EqualFold(value, target)` for an ASCII lower-case `target`: equal under
/// Unicode simple case folding, which beyond ASCII case folds U+017F LATIN SMALL LETTER LONG
/// S to `s` and U+212A KELVIN SIGN to `k` (the only non-ASCII letters in the orbits of ASCII
/// letters). Bytes that are not UTF-8 read as U+FFFD and match nothing here.
fn go_equal_fold(value: &[u8], target: &str) -> bool {
    let value = String::from_utf8_lossy(value);
    let mut theirs = value.chars();
    for t in target.chars() {
        let Some(c) = theirs.next() else {
            return false;
        };
        let same = c.to_ascii_lowercase() == t
            || (c == '\u{17F}' && t == 's')
            || (c == '\u{212A}' && t == 'k');
        if !same {
            return false;
        }
    }
    theirs.next().is_none()
}

/// Whether a label selector is one of the plain forms `labels.Parse` accepts (`k`, `!k`,
/// `k=v`, `k==v`, `k!=v`, comma-separated, no spaces, valid keys and values). `false` means
/// "not recognised", not "invalid".
fn plain_label_selector_is_valid(selector: &[u8]) -> bool {
    let Ok(selector) = std::str::from_utf8(selector) else {
        return false;
    };
    if selector.is_empty() {
        return true;
    }
    selector.split(',').all(|term| {
        if let Some(key) = term.strip_prefix('!') {
            return is_label_key(key);
        }
        let Some(i) = term.find(['=', '!']) else {
            return is_label_key(term);
        };
        let (key, rest) = term.split_at(i);
        let value = rest
            .strip_prefix("==")
            .or_else(|| rest.strip_prefix("!="))
            .or_else(|| rest.strip_prefix('='));
        is_label_key(key) && value.is_some_and(is_label_value)
    })
}

/// `validation.IsQualifiedName`, and not a keyword of the label-selector lexer.
fn is_label_key(key: &str) -> bool {
    if matches!(key, "in" | "notin") {
        return false;
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// `validation.IsValidLabelValue` (empty allowed), and not a lexer keyword.
fn is_label_value(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty() {
        return true;
    }
    !matches!(value, "in" | "notin")
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Percent-decodes a path as Go's `url.PathUnescape` does; an invalid escape leaves the path
/// as it is (Go refuses such a request outright, so what is read from it does not matter).
fn decode_path(path: &str) -> Result<String, Unreadable> {
    match unescape(path, false) {
        Some(bytes) => String::from_utf8(bytes).map_err(|_| Unreadable::PathNotUtf8),
        None => Ok(path.to_owned()),
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
/// bad escape dropped, `+` as a space, keys and values as bytes (UTF-8 or not).
fn query_values(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(k, true)?, unescape(v, true)?))
        })
        .collect()
}

/// The value a field selector requires of `metadata.name`, as `fields.ParseSelector` and
/// `RequiresExactMatch` read it: the comma-separated terms are sorted as (still escaped)
/// strings, and the first `metadata.name=x` or `==x` term in that order names the object.
/// `None` when the selector does not parse; `Some(None)` when it names no object.
fn field_selector_name(selector: &str) -> Option<Option<String>> {
    let mut terms = split_unescaped(selector, ',');
    terms.sort_unstable();
    let mut found = None;
    for term in terms {
        if term.is_empty() {
            continue;
        }
        let (field, op, value) = split_term(&term)?;
        let value = unescape_selector_value(value)?;
        if field == "metadata.name" && op != "!=" && found.is_none() {
            found = Some(value);
        }
    }
    Some(found)
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

    /// `parse` of a request gatehouse reads (the glob import's `parse` is shadowed).
    fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        super::parse(method, path, query).expect("a readable request")
    }

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

    #[test]
    fn more_than_ten_thousand_query_parameters_are_refused() {
        // 10,000 parameters (9,999 `&`) are read; one more and Go reads none: refused.
        let at_limit = format!("watch=1{}", "&".repeat(MAX_QUERY_PARAMETERS - 1));
        assert_eq!(parse("GET", "/api/v1/pods", Some(&at_limit)).verb, "watch");
        let over = format!("watch=1{}", "&".repeat(MAX_QUERY_PARAMETERS));
        assert_eq!(
            super::parse("GET", "/api/v1/pods", Some(&over)),
            Err(Unreadable::TooManyParameters)
        );
        // Counted as Go counts them: empty pairs too, on any path.
        assert_eq!(
            super::parse("GET", "/version", Some(&over)),
            Err(Unreadable::TooManyParameters)
        );
    }

    #[test]
    fn query_values_that_are_not_utf8_are_kept_as_bytes() {
        for q in ["watch=%FF", "watch=fals%FF", "%FFx=1&watch=%C3"] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).verb, "watch", "{q}");
        }
        // The first value counts, whatever its bytes.
        assert_eq!(
            parse("GET", "/api/v1/pods", Some("watch=%FF&watch=0")).verb,
            "watch"
        );
        assert_eq!(
            super::parse(
                "GET",
                "/api/v1/pods",
                Some("fieldSelector=metadata.name%3D%FF")
            ),
            Err(Unreadable::FieldSelectorNotUtf8)
        );
        // Only a list or watch reads the selector.
        assert!(super::parse("GET", "/api/v1/pods/p", Some("fieldSelector=%FF")).is_ok());
    }

    #[test]
    fn watch_false_is_folded_as_go_equal_fold_folds_it() {
        // U+017F LATIN SMALL LETTER LONG S folds to s; U+212A KELVIN SIGN to k (not in false).
        for q in [
            "watch=fal%C5%BFe",
            "watch=FAL%C5%BFE",
            "watch=FaLsE",
            "watch=0",
        ] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).verb, "list", "{q}");
        }
        for q in [
            "watch=f%C3%A1lse",
            "watch=%E2%84%AAfalse",
            "watch=false%00",
            "watch=%EF%BC%A6alse",
        ] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).verb, "watch", "{q}");
        }
        assert!(go_equal_fold("\u{212A}".as_bytes(), "k"));
        assert!(!go_equal_fold(b"fals", "false"));
        assert!(!go_equal_fold(b"falsee", "false"));
    }

    #[test]
    fn field_selector_terms_are_sorted_before_the_name_is_read() {
        for (sel, name) in [
            ("metadata.name%3Db,metadata.name%3Da", "a"),
            ("metadata.name%3Da,metadata.name%3Db", "a"),
            // `==` sorts before `=a`... ("metadata.name==" < "metadata.name=b").
            ("metadata.name%3Db,metadata.name%3D%3Dc", "c"),
            ("metadata.name!%3Da,metadata.name%3Db", "b"),
        ] {
            assert_eq!(
                parse("GET", "/api/v1/pods", Some(&format!("fieldSelector={sel}"))).name,
                name,
                "{sel}"
            );
        }
    }

    #[test]
    fn a_path_that_decodes_to_bytes_other_than_utf8_is_refused() {
        for p in [
            "/api/v1/namespaces/a%FF/pods",
            "/api/v1/namespaces/a/pods/%C3",
            "/version%FF",
        ] {
            assert_eq!(
                super::parse("GET", p, None),
                Err(Unreadable::PathNotUtf8),
                "{p}"
            );
        }
        // U+FFFD itself, sent as UTF-8, is an ordinary character.
        let i = parse("GET", "/api/v1/namespaces/a%EF%BF%BD/pods", None);
        assert_eq!(i.namespace.as_deref(), Some("a\u{FFFD}"));
    }

    #[test]
    fn failed_list_options_fall_back_as_the_kube_apiserver_does() {
        // A bad limit, timeoutSeconds or field selector: no name.
        for q in [
            "fieldSelector=metadata.name%3Dx&limit=z",
            "fieldSelector=metadata.name%3Dx&limit=1.5",
            "fieldSelector=metadata.name%3Dx&limit=99999999999999999999",
            "fieldSelector=metadata.name%3Dx&timeoutSeconds=",
            "fieldSelector=metadata.name%3Dx,bad",
            "fieldSelector=metadata.name%3Dx%5C",
        ] {
            let i = parse("GET", "/api/v1/pods", Some(q));
            assert_eq!((i.verb.as_str(), i.name.as_str()), ("list", ""), "{q}");
        }
        // Good ones keep it (ParseInt takes a sign).
        for q in [
            "fieldSelector=metadata.name%3Dx&limit=%2B5&timeoutSeconds=-1",
            "fieldSelector=metadata.name%3Dx&labelSelector=a%3Db,!c,d!%3De,f",
        ] {
            assert_eq!(parse("GET", "/api/v1/pods", Some(q)).name, "x", "{q}");
        }
        // The fallback folds watch by ASCII case only: long s is then true.
        assert_eq!(
            parse("GET", "/api/v1/pods", Some("watch=fal%C5%BFe&limit=z")).verb,
            "watch"
        );
        assert_eq!(
            parse("GET", "/api/v1/pods", Some("watch=FALSE&limit=z")).verb,
            "list"
        );
        // A valid plain label selector decodes: long s is false.
        assert_eq!(
            parse(
                "GET",
                "/api/v1/pods",
                Some("watch=fal%C5%BFe&labelSelector=a%3Db")
            )
            .verb,
            "list"
        );
        // A label selector gatehouse does not parse: refused only where the verb hangs on it.
        assert_eq!(
            super::parse(
                "GET",
                "/api/v1/pods",
                Some("watch=fal%C5%BFe&labelSelector=a+in+(b)")
            ),
            Err(Unreadable::AmbiguousWatch)
        );
        assert_eq!(
            parse(
                "GET",
                "/api/v1/pods",
                Some("watch=1&labelSelector=a+in+(b)")
            )
            .verb,
            "watch"
        );
    }

    #[test]
    fn plain_label_selectors() {
        for ok in [
            "",
            "a",
            "!a",
            "a=b",
            "a==b",
            "a!=b",
            "a=",
            "example.com/a-b_c.d=x",
            "a=b,c",
        ] {
            assert!(plain_label_selector_is_valid(ok.as_bytes()), "{ok}");
        }
        for unknown in [
            "a,", ",a", "in", "a=in", "a b", "a in (b)", "-a", "a=-b", "A.com/a", "/a", "a/",
            "a/b/c", "a=b=c", "a!b", "!a=b",
        ] {
            assert!(
                !plain_label_selector_is_valid(unknown.as_bytes()),
                "{unknown}"
            );
        }
    }
}
