//! A bare pass-through proxy: TLS in, TLS out to the kube-apiserver, every request and response
//! forwarded as it is (the client's own `Authorization` included), no authentication, no
//! header rules, no metrics. It exists only as the benchmarks' floor for what any proxy costs
//! (`bench/run`, contender "passthrough"); never run it in front of a real cluster.
//!
//! ```text
//! bench-passthrough LISTEN CERT KEY UPSTREAM_URL UPSTREAM_CA
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, upstream, upstream_ca] = args.as_slice() else {
        bail!("usage: bench-passthrough LISTEN CERT KEY UPSTREAM_URL UPSTREAM_CA");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN")?;
    let certs = CertificateDer::pem_file_iter(cert)
        .context("CERT")?
        .collect::<Result<Vec<_>, _>>()
        .context("CERT")?;
    let key = PrivateKeyDer::from_pem_file(key).context("KEY")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(server));

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(upstream_ca).context("UPSTREAM_CA")? {
        roots.add(c.context("UPSTREAM_CA")?)?;
    }
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // No Nagle on either side (as gatehouse): small requests and answers would otherwise wait
    // for the peer's delayed ACK (40 ms on Linux).
    let mut tcp_out = HttpConnector::new();
    tcp_out.enforce_http(false);
    tcp_out.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp_out);
    let client: Upstream = Client::builder(TokioExecutor::new()).build(https);
    let upstream: http::Uri = upstream.parse().context("UPSTREAM_URL")?;
    let authority = upstream
        .authority()
        .context("UPSTREAM_URL has no host")?
        .clone();

    let listener = TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        let client = client.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |mut req: http::Request<Incoming>| {
                let client = client.clone();
                let authority = authority.clone();
                async move {
                    let mut parts = req.uri().clone().into_parts();
                    parts.scheme = Some(http::uri::Scheme::HTTPS);
                    parts.authority = Some(authority);
                    *req.uri_mut() = http::Uri::from_parts(parts)?;
                    req.headers_mut().remove(http::header::HOST);
                    Ok::<_, anyhow::Error>(client.request(req).await?)
                }
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
