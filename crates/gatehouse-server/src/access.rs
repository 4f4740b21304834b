//! Choosing the ServiceAccount a mapped user acts as for one request.
//!
//! The candidates come from [`gatehouse_core::identity::candidate_service_accounts`]: the
//! request's namespace first, then the global namespaces. With one candidate there is nothing
//! to decide and no network call. With several, a SubjectAccessReview per candidate (in order,
//! answers cached for `limits.reviewCacheTtl`, keyed on the ServiceAccount and every field the
//! review sends, typed, so no two different reviews share an answer) picks the first one
//! allowed to do the request;
//! when none is, the first candidate is used and the kube-apiserver's own refusal reaches the
//! user. A review that fails (the kube-apiserver cannot be reached, or refuses gatehouse's own
//! review) is an error ([`ReviewFailed`], answered 503), not "not allowed": gatehouse cannot
//! tell which ServiceAccount may do the request, and guessing would act as one the user did
//! not get because of gatehouse's own failure.
//!
//! A WebSocket `exec`, `attach` or `portforward` is a `GET`, so Kubernetes' RequestInfo says
//! `get`; from Kubernetes 1.35 the kube-apiserver also requires `create` on the subresource
//! (as SPDY's `POST` always did), while 1.34 checks only `get`. The review asks for both
//! ([`review_verbs`]), so on any version gatehouse never picks a ServiceAccount that the
//! cluster will refuse.
//!
//! Reviews are sent with the ServiceAccount's groups (`system:serviceaccounts`,
//! `system:serviceaccounts:<ns>`, `system:authenticated`), so RBAC bound to those groups counts,
//! exactly as it will when the impersonated request runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::identity::candidate_service_accounts;
use gatehouse_core::mapping::ServiceAccountRef;
use gatehouse_core::request_info::RequestInfo;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

/// A SubjectAccessReview that could not be made or answered.
#[derive(Debug, thiserror::Error)]
#[error("the SubjectAccessReview for {service_account} failed: {source}")]
pub struct ReviewFailed {
    /// The candidate under review.
    pub service_account: ServiceAccountRef,
    /// Why.
    #[source]
    pub source: kube::Error,
}

/// Picks ServiceAccounts, with a short-lived cache of review answers.
pub struct AccessResolver {
    client: kube::Client,
    global_namespaces: Vec<String>,
    /// Review answers by candidate and request; the request's half is shared by every
    /// candidate of a request (an `Arc`, so probing the cache copies none of its strings).
    cache: moka::sync::Cache<(ServiceAccountRef, Arc<ReviewKey>), bool>,
}

impl std::fmt::Debug for AccessResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessResolver").finish_non_exhaustive()
    }
}

impl AccessResolver {
    /// Builds a resolver.
    pub fn new(client: kube::Client, global_namespaces: Vec<String>, ttl: Duration) -> Self {
        Self {
            client,
            global_namespaces,
            cache: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The ServiceAccount to impersonate for `info`, or `None` when nothing is mapped; an
    /// error when a review it needs fails.
    pub async fn choose(
        &self,
        mapped: &BTreeSet<ServiceAccountRef>,
        info: &RequestInfo,
    ) -> Result<Option<ServiceAccountRef>, ReviewFailed> {
        let candidates =
            candidate_service_accounts(mapped, info.namespace.as_deref(), &self.global_namespaces);
        if candidates.len() <= 1 {
            return Ok(candidates.into_iter().next());
        }
        let key = Arc::new(review_key(info));
        for sa in &candidates {
            let cache_key = (sa.clone(), Arc::clone(&key));
            let allowed = match self.cache.get(&cache_key) {
                Some(a) => a,
                None => match self.review(sa, info).await {
                    Ok(a) => {
                        self.cache.insert(cache_key, a);
                        a
                    }
                    Err(e) => {
                        tracing::warn!(serviceaccount = %sa, error = %e, "SubjectAccessReview failed");
                        return Err(ReviewFailed {
                            service_account: sa.clone(),
                            source: e,
                        });
                    }
                },
            };
            if allowed {
                return Ok(Some(sa.clone()));
            }
        }
        Ok(candidates.into_iter().next())
    }

    async fn review(
        &self,
        sa: &ServiceAccountRef,
        info: &RequestInfo,
    ) -> Result<bool, kube::Error> {
        for verb in review_verbs(info) {
            if !self.review_verb(sa, info, verb).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn review_verb(
        &self,
        sa: &ServiceAccountRef,
        info: &RequestInfo,
        verb: &str,
    ) -> Result<bool, kube::Error> {
        let (resource_attributes, non_resource_attributes) = if info.is_resource_request {
            (
                Some(ResourceAttributes {
                    group: Some(info.api_group.clone()),
                    version: Some(info.api_version.clone()),
                    resource: Some(info.resource.clone()),
                    subresource: Some(info.subresource.clone()),
                    name: Some(info.name.clone()),
                    namespace: info.namespace.clone(),
                    verb: Some(verb.to_owned()),
                    ..Default::default()
                }),
                None,
            )
        } else {
            (
                None,
                Some(NonResourceAttributes {
                    path: Some(info.path.clone()),
                    verb: Some(verb.to_owned()),
                }),
            )
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(sa.username()),
                groups: Some(sa.groups()),
                resource_attributes,
                non_resource_attributes,
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

/// The verbs the kube-apiserver checks for `info`: `get` and `create` for a `GET` (WebSocket)
/// `exec`, `attach` or `portforward`, else the request's own verb.
pub fn review_verbs(info: &RequestInfo) -> Vec<&str> {
    let connect = info.is_resource_request
        && info.api_group.is_empty()
        && info.resource == "pods"
        && matches!(info.subresource.as_str(), "exec" | "attach" | "portforward");
    if connect && info.verb == "get" {
        vec!["get", "create"]
    } else {
        vec![info.verb.as_str()]
    }
}

/// What a cached review decision is keyed on: every field of `info` that the
/// SubjectAccessReviews for it send (the verbs follow from these, by [`review_verbs`]; the user
/// and groups from the ServiceAccount, the other half of the cache key). Typed fields, not a
/// joined string: no value (a `|` from `%7C` in a path, say) can move a boundary between two
/// fields, and two requests share a decision only when their reviews are the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReviewKey {
    Resource {
        verb: String,
        group: String,
        version: String,
        resource: String,
        subresource: String,
        name: String,
        namespace: Option<String>,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

fn review_key(info: &RequestInfo) -> ReviewKey {
    if info.is_resource_request {
        ReviewKey::Resource {
            verb: info.verb.clone(),
            group: info.api_group.clone(),
            version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name: info.name.clone(),
            namespace: info.namespace.clone(),
        }
    } else {
        ReviewKey::NonResource {
            verb: info.verb.clone(),
            path: info.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        gatehouse_core::request_info::parse(method, path, query).unwrap()
    }

    #[test]
    fn requests_differing_in_any_reviewed_field_do_not_share_a_cached_decision() {
        let base = parse("GET", "/apis/apps/v1/namespaces/a/deployments/web", None);
        let other_version = parse(
            "GET",
            "/apis/apps/v1beta1/namespaces/a/deployments/web",
            None,
        );
        assert_ne!(review_key(&base), review_key(&other_version), "api version");
        // A `|` (from `%7C` in the path) cannot move a boundary between fields.
        let one = parse("GET", "/api/v1/namespaces/a/pods%7Cx/p/y", None);
        let two = parse("GET", "/api/v1/namespaces/a/pods/p%7Cx/y", None);
        let (mut three, mut four) = (one.clone(), one.clone());
        three.resource = "pods".to_owned();
        three.subresource = "x|y".to_owned();
        four.resource = "pods|x".to_owned();
        four.subresource = "y".to_owned();
        three.name = String::new();
        four.name = String::new();
        assert_ne!(review_key(&one), review_key(&two));
        assert_ne!(
            review_key(&three),
            review_key(&four),
            "resource|subresource"
        );
        let mut ns = base.clone();
        ns.namespace = None;
        let mut empty_ns = base.clone();
        empty_ns.namespace = Some(String::new());
        assert_ne!(
            review_key(&ns),
            review_key(&empty_ns),
            "no namespace vs empty"
        );
        // Non-resource paths too.
        let p1 = parse("GET", "/logs%7Cx", None);
        let mut p2 = p1.clone();
        p2.verb = "get|/logs".to_owned();
        p2.path = "x".to_owned();
        let mut p1b = p1.clone();
        p1b.path = "/logs|x".to_owned();
        assert_ne!(review_key(&p1b), review_key(&p2), "non-resource");
        // The same request shares it.
        assert_eq!(review_key(&base), review_key(&base.clone()));
    }

    #[test]
    fn websocket_exec_attach_portforward_are_reviewed_as_get_and_create() {
        for sub in ["exec", "attach", "portforward"] {
            let info = parse(
                "GET",
                &format!("/api/v1/namespaces/a/pods/p/{sub}"),
                Some("command=sh"),
            );
            assert_eq!(review_verbs(&info), ["get", "create"], "{sub}");
            let spdy = parse("POST", &format!("/api/v1/namespaces/a/pods/p/{sub}"), None);
            assert_eq!(review_verbs(&spdy), ["create"], "{sub}");
        }
        assert_eq!(
            review_verbs(&parse("GET", "/api/v1/namespaces/a/pods/p/log", None)),
            ["get"]
        );
        assert_eq!(
            review_verbs(&parse("GET", "/api/v1/namespaces/a/pods", None)),
            ["list"]
        );
    }

    #[tokio::test]
    async fn a_failed_review_is_an_error_not_a_refusal() {
        // Nothing listens on port 1: every review fails to connect.
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let access = AccessResolver::new(client, Vec::new(), Duration::from_secs(10));
        let sa = |ns: &str| ServiceAccountRef {
            namespace: ns.to_owned(),
            name: "dev".to_owned(),
        };
        let info = parse("GET", "/api/v1/namespaces/team-a/pods", None);
        // One candidate: no review, no network.
        let one: BTreeSet<_> = [sa("team-a")].into();
        assert_eq!(
            access.choose(&one, &info).await.unwrap(),
            Some(sa("team-a"))
        );
        // Two (a global namespace too): the first review fails, and says so.
        let access = AccessResolver {
            global_namespaces: vec!["shared".to_owned()],
            ..access
        };
        let two: BTreeSet<_> = [sa("team-a"), sa("shared")].into();
        let err = access.choose(&two, &info).await.unwrap_err();
        assert_eq!(err.service_account, sa("team-a"));
        assert!(
            err.to_string()
                .starts_with("the SubjectAccessReview for team-a/dev failed"),
            "{err}"
        );
    }
}
