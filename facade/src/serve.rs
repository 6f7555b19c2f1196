//! The HTTP server: hyper's HTTP/1 connection builder with a header-read
//! timeout (which `axum::serve` lacks), a bound on open connections,
//! optional TLS (rustls), and graceful shutdown.

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
    service::TowerToHyperService,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::extract::ArrivedOverTls;

/// Limits of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Time a client has to send the request line and headers (and to
    /// finish the TLS handshake).
    pub header_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the backlog.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after shutdown is signalled.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this configuration (see [`tls_config`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// A TLS configuration from PEM files: the certificate chain (leaf first)
/// and its private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_config(cert_pem: &Path, key_pem: &Path) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| invalid("TLS certificate file", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("TLS certificate file", &e))?;
    if certs.is_empty() {
        return Err(invalid("TLS certificate file", &"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| invalid("TLS key file", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` with [`ServeOptions::default`] until `shutdown`
/// resolves; in-flight requests then finish (up to the grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeOptions::default(), shutdown).await
}

/// [`serve`] with explicit limits and, optionally, TLS.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let tls = options.tls.clone().map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let app = app.clone();
        let builder = builder.clone();
        match &tls {
            None => {
                let connection = Connection {
                    app,
                    builder,
                    watcher,
                    peer,
                    tls: false,
                    permit,
                };
                tokio::spawn(connection.run(stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = options.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let connection = Connection {
                                app,
                                builder,
                                watcher,
                                peer,
                                tls: true,
                                permit,
                            };
                            connection.run(stream).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// One accepted connection, served until it closes.
struct Connection {
    app: Router,
    builder: Arc<http1::Builder>,
    watcher: Watcher,
    peer: SocketAddr,
    tls: bool,
    /// Held while the connection is open.
    permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            builder,
            watcher,
            peer,
            tls,
            permit,
        } = self;
        let service = TowerToHyperService::new(app.map_request(
            move |mut request: axum::http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                if tls {
                    request.extensions_mut().insert(ArrivedOverTls);
                }
                request
            },
        ));
        let connection = builder.serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        drop(permit);
    }
}
