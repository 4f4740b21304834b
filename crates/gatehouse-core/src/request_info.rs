//! What a Kubernetes API request asks for, read from its method, path and query, the way the
//! kube-apiserver's own `RequestInfo` does. Used to pick the namespace's ServiceAccount and to
//! phrase SubjectAccessReviews; the kube-apiserver still authorizes the real request.

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
    /// Object name, when the path names one.
    pub name: String,
    /// Namespace, when the request is namespaced.
    pub namespace: Option<String>,
    /// The request path.
    pub path: String,
}

/// Parses a request. `query` is the raw query string without `?`.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
    let mut info = RequestInfo {
        verb: method.to_ascii_lowercase(),
        path: path.to_owned(),
        ..RequestInfo::default()
    };
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_version = (*version).to_owned();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_group = (*group).to_owned();
            info.api_version = (*version).to_owned();
            rest
        }
        _ => return info,
    };
    info.is_resource_request = true;
    let mut rest = rest;
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    let rest: &[&str] = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
            info.namespace = Some((*ns).to_owned());
            tail
        }
        ["namespaces", ns] => {
            info.namespace = Some((*ns).to_owned());
            info.resource = "namespaces".to_owned();
            info.name = (*ns).to_owned();
            &[]
        }
        other => other,
    };
    if let Some(resource) = rest.first() {
        info.resource = (*resource).to_owned();
    }
    if let Some(name) = rest.get(1) {
        info.name = (*name).to_owned();
    }
    if rest.len() > 2 {
        info.subresource = rest[2..].join("/");
    }
    let watch_param = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
    });
    info.verb = match method {
        "GET" | "HEAD" if legacy_watch || watch_param => "watch",
        "GET" | "HEAD" if info.name.is_empty() => "list",
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if info.name.is_empty() => "deletecollection",
        "DELETE" => "delete",
        other => {
            return RequestInfo {
                verb: other.to_ascii_lowercase(),
                ..info
            };
        }
    }
    .to_owned();
    info
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
}
