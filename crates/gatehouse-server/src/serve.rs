//! The listener: TLS (when configured), HTTP/1.1 and HTTP/2, upgrades, header limits, and
//! graceful shutdown on SIGTERM or Ctrl-C (stop accepting, let open requests finish for up to
//! 30 seconds).
//!
//! # Security: every connection is bounded
//! The limits (documented in `docs/configuration.md`, "Connection limits"), close to the
//! kube-apiserver's own so a client behaves alike through gatehouse:
//! - [`HANDSHAKE_TIMEOUT`] for the TLS handshake, and [`HEADER_TIMEOUT`] from accepting the
//!   connection until the head of its first request has been read, whatever the protocol
//!   ([`first_request_within`]): a client that connects and sends nothing, or half of the
//!   HTTP/2 preface, is closed then (the protocol detection and the HTTP/2 handshake have no
//!   timeout of their own). HTTP/1.1 applies the same timeout to the head of every later request
//!   on the connection (an idle keep-alive connection is closed after it).
//! - Request heads (HTTP/1.1 buffer, HTTP/2 header list) at most `limits.maxHeaderBytes`.
//! - HTTP/2: at most [`MAX_STREAMS`] concurrent streams per connection (the default of
//!   aggregated API servers; the kube-apiserver's own is 100, and client-go opens another
//!   connection when one is full, so a client with many watches needs fewer); at most
//!   [`MAX_PENDING_RESETS`] streams reset by the client before gatehouse accepted them, and
//!   [`MAX_LOCAL_ERROR_RESETS`] streams gatehouse had to reset for the client's errors, before
//!   the connection is ended with `GOAWAY` (rapid reset, CVE-2023-44487, and its variants);
//!   keep-alive pings every 30 s, and a connection whose peer does not answer one within
//!   [`PING_TIMEOUT`] is closed.
//! - TCP keep-alive finds peers that vanished ([`keepalive`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsFiles};

/// The server could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The serving certificate or key could not be loaded.
    #[error("cannot load the serving certificate ({path}): {reason}")]
    Tls {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Time for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from accepting a connection to having read its first request's head, and (HTTP/1.1)
/// for each later request's head. The kube-apiserver allows 32 s.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent HTTP/2 streams per connection (aggregated API servers' default; the
/// kube-apiserver's is 100).
pub const MAX_STREAMS: u32 = 1000;
/// HTTP/2 streams the client may reset before gatehouse accepted them, at once.
pub const MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams gatehouse may reset for the client's protocol errors on one connection.
pub const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Time for the peer to answer an HTTP/2 keep-alive ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Loads the serving certificate into a TLS acceptor offering HTTP/2 and HTTP/1.1.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let err = |path: &std::path::Path, reason: String| ServeError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(&files.cert_file, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| err(&files.key_file, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&files.cert_file, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> Result<TcpListener, ServeError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    max_header_bytes: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(PING_TIMEOUT);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // TCP keep-alive: a client that vanishes without closing (a dropped NAT entry, a
        // suspended laptop) is noticed within about two minutes, so its exec or port-forward
        // tunnel and the stream behind it are closed instead of held forever.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive());
        let accepted = Instant::now();
        let first_request = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&first_request);
        // Every request learns its TCP peer (audit `sourceIPs`, login backoff, logs).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: http::Request<hyper::body::Incoming>| {
                seen.store(true, Ordering::Release);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                            let conn = watcher.watch(conn.into_owned());
                            match first_request_within(conn, &first_request, accepted).await {
                                Some(result) => result,
                                None => return,
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let conn = watcher.watch(conn.into_owned());
                    match first_request_within(conn, &first_request, accepted).await {
                        Some(result) => result,
                        None => return,
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for open requests (at most 30 s)");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("open requests did not finish within 30 s");
        }
    }
}

/// Runs a connection, and drops it (closing it) when no request head has been read
/// [`HEADER_TIMEOUT`] after it was `accepted`; `None` then.
async fn first_request_within<R>(
    conn: impl std::future::Future<Output = R>,
    first_request: &AtomicBool,
    accepted: Instant,
) -> Option<R> {
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return Some(result),
        () = tokio::time::sleep_until((accepted + HEADER_TIMEOUT).into()) => {}
    }
    if first_request.load(Ordering::Acquire) {
        Some(conn.await)
    } else {
        tracing::debug!("no request head within the header timeout; connection closed");
        None
    }
}

/// Keep-alive probes after 60 s of silence, every 15 s, 4 unanswered ones end the connection.
fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15))
        .with_retries(4)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
