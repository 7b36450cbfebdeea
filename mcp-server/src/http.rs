//! Streamable HTTP: rmcp's service behind cordon's own gate. A request needs the bearer token
//! (compared in constant time), a Host that names the listener (DNS rebinding), and either no
//! Origin or an allowed one; anything else is answered 401/403 and audited before rmcp sees
//! a byte of it.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cordon_audit::{Event, Kind};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::ToolError;
use crate::guard::Guard;
use crate::server::CordonServer;

/// Who may talk to the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    /// The bearer token every request must carry (`None`: none is asked for, an explicit
    /// downgrade for protocol test suites).
    pub token: Option<String>,
    /// Host header values accepted (`host` or `host:port`).
    pub hosts: Vec<String>,
    /// Origin header values accepted (exact, e.g. `http://127.0.0.1:8787`); a request without
    /// an Origin (not from a browser) is accepted.
    pub origins: Vec<String>,
}

type Body = BoxBody<Bytes, Infallible>;

/// A TLS configuration from a PEM certificate chain and its PEM private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ToolError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ToolError::Invalid(format!("TLS certificate {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ToolError::Invalid(format!(
            "TLS certificate {}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ToolError::Invalid(format!("TLS key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ToolError::Invalid(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| ToolError::Invalid(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `server` on `listener` (over TLS with `tls`) until the process ends.
pub async fn serve(
    server: CordonServer,
    guard: Guard,
    listener: TcpListener,
    access: HttpAccess,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(access.hosts.clone())
        .with_sse_keep_alive(Some(Duration::from_secs(15)));
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let access = Arc::new(access);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (service, access, guard) = (service.clone(), Arc::clone(&access), guard.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (service, access, guard) =
                    (service.clone(), Arc::clone(&access), guard.clone());
                async move {
                    if let Some(refusal) = admit(&access, &guard, &req, &peer.to_string()) {
                        return Ok::<_, Infallible>(refusal);
                    }
                    let resp = service.handle(req).await;
                    Ok(resp.map(BodyExt::boxed))
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), handler).await;
                }
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), handler)
                            .await;
                    }
                    Err(e) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                },
            }
        });
    }
}

/// `None` when the request may go on; else the answer, already audited.
fn admit(
    access: &HttpAccess,
    guard: &Guard,
    req: &Request<Incoming>,
    peer: &str,
) -> Option<Response<Body>> {
    // HTTP/2 carries the host as :authority (the URI's), HTTP/1.1 in the Host header.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(http::uri::Authority::as_str))
        .unwrap_or("");
    let host_ok = access.hosts.iter().any(|h| {
        h.eq_ignore_ascii_case(host)
            || host
                .rsplit_once(':')
                .is_some_and(|(n, _)| h.eq_ignore_ascii_case(n))
    });
    if !host_ok {
        return Some(refuse(
            guard,
            peer,
            StatusCode::FORBIDDEN,
            "the Host header does not name this server",
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !access.origins.iter().any(|o| o == origin) {
            return Some(refuse(
                guard,
                peer,
                StatusCode::FORBIDDEN,
                "this Origin is not allowed",
            ));
        }
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if let Some(token) = &access.token
        && !same(given.as_bytes(), token.as_bytes())
    {
        let why = if given.is_empty() {
            "a bearer token is required"
        } else {
            "the bearer token is wrong"
        };
        let mut resp = refuse(guard, peer, StatusCode::UNAUTHORIZED, why);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return Some(resp);
    }
    None
}

/// Constant-time equality (the length is not secret: tokens have one fixed length).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(guard: &Guard, peer: &str, status: StatusCode, why: &str) -> Response<Body> {
    let event = Event::new(Kind::ToolCall, "http")
        .target(peer.to_owned())
        .outcome("refused")
        .detail("status", json!(status.as_u16()))
        .detail("reason", json!(why));
    if let Err(e) = guard.record(event) {
        tracing::error!(error = %e, "cannot write the audit record of a refused HTTP request");
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!("{why}\n"))).boxed());
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_tokens() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}
