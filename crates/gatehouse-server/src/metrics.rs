//! Prometheus metrics. Labels never carry user data (no usernames, paths or tokens), so the
//! series count stays small and nothing personal is exported.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// How the request was authenticated: `admin`, `oidc`, `fallthrough`, `refused`.
    pub auth: &'static str,
    /// HTTP status class: `2xx`, `4xx`, ...
    pub code: &'static str,
}

/// Labels of the authentication refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why, from a small fixed set ([`crate::authn::Refusal::reason`]): `malformed`,
    /// `algorithm`, `unknown_key`, `bad_signature`, `expired`, `token_in_query`, ...
    pub reason: &'static str,
}

/// Labels of the `AuthenticationConfiguration` reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied`, `refused` or `unchanged` ([`crate::issuers::Reloaded::label`]).
    pub result: &'static str,
}

/// gatehouse's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Proxied requests by authentication outcome and status class.
    pub proxy_requests: Family<RequestLabels, Counter>,
    /// Time until the kube-apiserver's response headers, in seconds.
    pub upstream_seconds: Histogram,
    /// Admin sign-in attempts that failed.
    pub admin_login_failures: Counter,
    /// Admin sign-in attempts refused before the password check (backoff, overall pause,
    /// queue full, address outside `admin.loginAllowedCidrs`).
    pub admin_login_refused: Counter,
    /// Requests the authentication layer refused, by reason.
    pub authentication_refusals: Family<RefusalLabels, Counter>,
    /// Proxied requests whose response is still being sent (watches and `logs -f` included).
    pub proxy_in_flight: Gauge,
    /// Upgraded connections (exec, attach, port-forward) open through gatehouse.
    pub proxy_open_tunnels: Gauge,
    /// Re-reads of `authentication.configFile`, by result.
    pub authentication_config_reloads: Family<ReloadLabels, Counter>,
    /// 1 while the running `AuthenticationConfiguration` is the file's current content, 0
    /// while a changed file is refused (the older one keeps running).
    pub authentication_config_current: Gauge,
}

/// Counts one in a gauge for as long as it lives.
#[derive(Debug)]
pub struct Held(Gauge);

impl Held {
    /// Adds one to `gauge` until the returned value is dropped.
    pub fn hold(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A response body that holds a gauge's count until the body is dropped: sent to its end, or
/// dropped when the client goes away. Frames, end of stream and size hint are the inner body's.
#[derive(Debug)]
pub struct HeldBody<B> {
    body: B,
    _held: Held,
}

impl<B> HeldBody<B> {
    /// `body`, counted in `held` while it lives.
    pub fn new(body: B, held: Held) -> Self {
        Self { body, _held: held }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let proxy_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "proxy_requests",
            "Kubernetes API requests proxied, by authentication outcome and status class",
            proxy_requests.clone(),
        );
        let upstream_seconds = Histogram::new(exponential_buckets(0.001, 2.5, 12));
        registry.register(
            "upstream_response_seconds",
            "Time until the kube-apiserver answered with response headers",
            upstream_seconds.clone(),
        );
        let admin_login_failures = Counter::default();
        registry.register(
            "admin_login_failures",
            "Admin sign-in attempts with a wrong password",
            admin_login_failures.clone(),
        );
        let admin_login_refused = Counter::default();
        registry.register(
            "admin_login_refused",
            "Admin sign-in attempts refused before the password check (throttled or address not allowed)",
            admin_login_refused.clone(),
        );
        let authentication_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "authentication_refusals",
            "Requests the authentication layer refused, by reason (a fixed set of labels)",
            authentication_refusals.clone(),
        );
        let proxy_in_flight = Gauge::default();
        registry.register(
            "proxy_in_flight_requests",
            "Proxied Kubernetes API requests whose response is still being sent (watches and log streams included)",
            proxy_in_flight.clone(),
        );
        let proxy_open_tunnels = Gauge::default();
        registry.register(
            "proxy_open_tunnels",
            "Upgraded connections (exec, attach, port-forward) open between a client and the kube-apiserver",
            proxy_open_tunnels.clone(),
        );
        let authentication_config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "authentication_config_reloads",
            "Re-reads of authentication.configFile, by result: applied, refused (the running configuration kept) or unchanged",
            authentication_config_reloads.clone(),
        );
        let authentication_config_current = Gauge::default();
        registry.register(
            "authentication_config_current",
            "1 while the running AuthenticationConfiguration is the file's current content; 0 while a changed file is refused and an older one runs",
            authentication_config_current.clone(),
        );
        Self {
            authentication_config_reloads,
            authentication_config_current,
            registry,
            proxy_requests,
            upstream_seconds,
            admin_login_failures,
            admin_login_refused,
            authentication_refusals,
            proxy_in_flight,
            proxy_open_tunnels,
        }
    }
}

impl Metrics {
    /// Registers the privileged HTTP/2 pool's metrics ([`crate::upstream::PoolMetrics`]),
    /// which the pool owns: `gatehouse_upstream_h2_connections` and
    /// `gatehouse_upstream_pool_refused_total`. [`crate::app::App::from_parts`] calls it.
    pub fn register_pool(&mut self, pool: &crate::upstream::PoolMetrics) {
        self.registry.register(
            "upstream_h2_connections",
            "HTTP/2 connections to the kube-apiserver with gatehouse's own credentials that carry at least one request (at most kubernetes.maxConnections)",
            pool.connections.clone(),
        );
        self.registry.register(
            "upstream_pool_refused",
            "Mapped and admin requests refused with 429 because every HTTP/2 connection to the kube-apiserver was full at kubernetes.maxConnections",
            pool.refused.clone(),
        );
    }

    /// Counts a refusal of the authentication layer (`reason` from a fixed set).
    pub fn refused(&self, reason: &'static str) {
        self.authentication_refusals
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The status class label for a status code.
pub fn code_class(code: http::StatusCode) -> &'static str {
    match code.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt as _;

    #[test]
    fn refusals_are_counted_by_reason() {
        let m = Metrics::default();
        m.refused("expired");
        m.refused("expired");
        m.refused("token_in_query");
        let text = m.encode();
        assert!(
            text.contains("gatehouse_authentication_refusals_total{reason=\"expired\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_authentication_refusals_total{reason=\"token_in_query\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn the_upstream_pool_metrics_are_exported_once_registered() {
        let mut m = Metrics::default();
        let pool = crate::upstream::PoolMetrics::default();
        m.register_pool(&pool);
        pool.connections.inc();
        pool.refused.inc();
        pool.refused.inc();
        let text = m.encode();
        assert!(
            text.contains("gatehouse_upstream_h2_connections 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_upstream_pool_refused_total 2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_held_body_counts_until_dropped_and_passes_its_frames_through() {
        let gauge = Gauge::default();
        let body = HeldBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"pods")),
            Held::hold(&gauge),
        );
        assert_eq!(gauge.get(), 1);
        assert_eq!(body.size_hint().exact(), Some(4));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"pods");
        assert_eq!(gauge.get(), 0, "read to its end and dropped");

        let unread = HeldBody::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            Held::hold(&gauge),
        );
        assert_eq!(gauge.get(), 1);
        drop(unread);
        assert_eq!(gauge.get(), 0, "dropped unread (the client went away)");
    }
}
