//! TLS on the service's address, for gRPC and plain HTTP alike.
//!
//! tonic's own TLS offers only `h2` in ALPN, so an HTTPS client that asks
//! for `http/1.1` alone, as some webhook senders do, fails its handshake.
//! Here the handshake offers both, and each finished TLS connection is
//! handed to the server like a plain one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::debug;

use crate::ServeError;
use crate::config::TlsFiles;

/// Maximum time a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Reads the PEM certificate chain and private key and builds the server's
/// TLS settings, so that an unreadable file or a key that does not fit
/// stops the start.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let failed = |path: &std::path::Path, reason: String| ServeError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let read =
        |path: &std::path::Path| std::fs::read(path).map_err(|err| failed(path, err.to_string()));
    let chain = read(&files.certificate)?;
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<_, _>>()
        .map_err(|err| {
            failed(
                &files.certificate,
                format!("invalid PEM certificate: {err}"),
            )
        })?;
    if certificates.is_empty() {
        return Err(failed(
            &files.certificate,
            "no PEM certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.private_key)?).map_err(|err| {
        failed(
            &files.private_key,
            format!("invalid PEM private key: {err}"),
        )
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| failed(&files.certificate, err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|err| {
            failed(
                &files.private_key,
                format!("the key does not fit the certificate: {err}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection that the server takes like a TCP one.
pub struct TlsConnection(TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Accepts connections on `listener` and yields those whose handshake
/// finished. Each handshake runs on its own task, so a slow client holds
/// up no other. Accepting stops once the server drops the stream.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (accepted, stream) = mpsc::channel(ACCEPTED_BACKLOG);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let connection = tokio::select! {
                connection = listener.accept() => connection,
                () = accepted.closed() => return,
            };
            let (tcp, peer) = match connection {
                Ok(connection) => connection,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin.
                    debug!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let accepted = accepted.clone();
            tokio::spawn(handshake(acceptor, tcp, peer, accepted));
        }
    });
    ReceiverStream::new(stream)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    accepted: mpsc::Sender<Result<TlsConnection, io::Error>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let _ = accepted.send(Ok(TlsConnection(tls))).await;
        }
        // A failed handshake is the client's problem and ends only its own
        // connection.
        Ok(Err(err)) => debug!(peer = %peer, error = %err, "tls handshake failed"),
        Err(_) => debug!(peer = %peer, "tls handshake timed out"),
    }
}
