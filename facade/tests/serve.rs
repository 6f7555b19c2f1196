//! The HTTP server itself: plain and TLS connections, the header-read
//! timeout and graceful shutdown. Discovery endpoints need no core, so the
//! channel points nowhere.
#![allow(clippy::unwrap_used)]

use std::{path::Path, sync::Arc, time::Duration};

use provisioning_facade::{FacadeConfig, ServeOptions, app, serve_with, tls_config};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

fn router() -> axum::Router {
    let channel = tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy();
    app(channel, FacadeConfig::default())
}

struct Server {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(options: ServeOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_with(listener, router(), options, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, done }
}

/// Sends one request and reads the whole answer (`Connection: close`).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

const GET_SPC: &str =
    "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: scim.test\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn plain_http_and_graceful_shutdown() {
    let server = start(ServeOptions::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = exchange(&mut stream, GET_SPC).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: application/scim+json\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("\"location\":\"http://scim.test/scim/v2/ServiceProviderConfig\""),
        "{answer}"
    );
    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = start(options).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The server gives up on the headers and closes the connection.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "connection still open after the header-read timeout"
    );
    let _ = server.stop.send(());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait() {
    let options = ServeOptions {
        max_connections: 1,
        ..ServeOptions::default()
    };
    let server = start(options).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"GET /scim/v2/Schemas HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // The first connection is still open (keep-alive): the second waits.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(GET_SPC.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
    assert!(
        waited.is_err(),
        "second connection served while the first was open"
    );
    drop(first);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let _ = server.stop.send(());
}

#[tokio::test]
async fn https_with_rustls() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let tls = tls_config(
        &fixtures.join("localhost.crt"),
        &fixtures.join("localhost.key"),
    )
    .unwrap();
    let server = start(ServeOptions {
        tls: Some(tls),
        ..ServeOptions::default()
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(fixtures.join("localhost.crt")).unwrap();
    use rustls_pki_types::pem::PemObject as _;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let answer = exchange(&mut stream, GET_SPC).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // Over TLS, URLs built from the Host header are https.
    assert!(
        answer.contains("\"location\":\"https://scim.test/scim/v2/ServiceProviderConfig\""),
        "{answer}"
    );

    // Plain HTTP on the TLS port gets nothing useful.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain.write_all(GET_SPC.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    let _ = server.stop.send(());
}

#[test]
fn bad_tls_files_are_reported() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let err = tls_config(
        &fixtures.join("missing.crt"),
        &fixtures.join("localhost.key"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = tls_config(
        &fixtures.join("localhost.crt"),
        &fixtures.join("localhost.crt"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
}

/// Serves the facade with `config` over a core at `grpc_url`, answers one
/// GET /Users with a token.
async fn list_users_via(grpc_url: String, config: FacadeConfig) -> String {
    let channel = tonic::transport::Endpoint::from_shared(grpc_url)
        .unwrap()
        .connect_lazy();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_with(
        listener,
        app(channel, config),
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(
        &mut stream,
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer scim_x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let _ = stop.send(());
    answer
}

#[tokio::test]
async fn core_unreachable_is_503_with_retry_after() {
    // Nothing listens there.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let answer = list_users_via(url, FacadeConfig::default()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 5\r\n"), "{answer}");
    assert!(answer.contains("\"status\":\"503\""), "{answer}");
}

#[tokio::test]
async fn stuck_core_is_503_before_the_deadline() {
    // A "core" that accepts connections and never answers.
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", stuck.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = stuck.accept().await {
            open.push(socket);
        }
    });
    let config = FacadeConfig {
        request_timeout: Duration::from_millis(300),
        ..FacadeConfig::default()
    };
    let started = std::time::Instant::now();
    let answer = list_users_via(url, config).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after:"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
