//! The proxy's side towards origins: one request over a fresh connection to an address the
//! policy checked, in plain HTTP/1.1 or over verified TLS, where the origin may choose HTTP/2.
//!
//! Connections are not pooled: every request's destination was decided with the addresses it
//! resolved to, and a pooled connection would carry a later request to an address that request
//! never had checked.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why a request got no answer from its origin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The TLS handshake failed: most often a certificate the proxy does not trust.
    #[error("{0}")]
    Tls(io::Error),
    /// The origin broke HTTP, or the connection ended early.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be put in HTTP/2 form.
    #[error("{0}")]
    Request(String),
}

/// Verified TLS to origins, for interception.
#[derive(Clone)]
pub(crate) struct TlsUpstream {
    /// Offers `h2` and `http/1.1`: the origin picks.
    any: tokio_rustls::TlsConnector,
    /// Offers `http/1.1` only: for upgrades, which HTTP/2 carries differently (RFC 8441).
    http1: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsUpstream")
    }
}

impl TlsUpstream {
    /// Connectors over `config`'s roots (whatever ALPN it had is replaced).
    pub(crate) fn new(config: &ClientConfig) -> TlsUpstream {
        let with = |protocols: &[&[u8]]| {
            let mut c = config.clone();
            c.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            tokio_rustls::TlsConnector::from(Arc::new(c))
        };
        TlsUpstream {
            any: with(&[b"h2", b"http/1.1"]),
            http1: with(&[b"http/1.1"]),
        }
    }
}

/// Sends `req` (origin-form URI, Host header set) over `tcp` and returns the answer. With `tls`
/// the connection is verified TLS for `host`, in HTTP/2 when the origin offers it and the
/// request is not an upgrade. Upgrades keep the connection open for the upgraded stream.
pub(crate) async fn send(
    tcp: TcpStream,
    host: &str,
    tls: Option<&TlsUpstream>,
    req: Request<Full<Bytes>>,
    upgrade: bool,
) -> Result<Response<Incoming>, UpstreamError> {
    let Some(tls) = tls else {
        return http1(tcp, req, upgrade).await;
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| UpstreamError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let connector = if upgrade { &tls.http1 } else { &tls.any };
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(UpstreamError::Tls)?;
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        http2(stream, req).await
    } else {
        http1(stream, req, upgrade).await
    }
}

async fn http1<IO>(
    io: IO,
    req: Request<Full<Bytes>>,
    upgrade: bool,
) -> Result<Response<Incoming>, UpstreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let done = if upgrade {
            conn.with_upgrades().await
        } else {
            conn.await
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender.send_request(req).await?)
}

/// HTTP/2 wants the authority and scheme in the URI (`:authority`, `:scheme`) rather than a
/// Host header.
async fn http2<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, UpstreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .headers
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_owned))
        .ok_or_else(|| UpstreamError::Request("the request has no Host header".into()))?;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("https")
        .authority(authority.as_str())
        .path_and_query(path.as_str())
        .build()
        .map_err(|e| UpstreamError::Request(e.to_string()))?;
    parts.version = http::Version::HTTP_2;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
        }
    });
    let mut resp = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    // The client is spoken to in HTTP/1.1 whatever the origin spoke.
    *resp.version_mut() = http::Version::HTTP_11;
    Ok(resp)
}
