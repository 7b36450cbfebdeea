//! The proxy's connection handling: HTTP/1.1 from clients (the sandbox's bridge, or a loopback
//! TCP listener), absolute-form requests forwarded to their origin, CONNECT turned into a
//! tunnel. Every destination passes the network policy twice (the name before it is resolved,
//! then the name with every address it resolved to) and the proxy dials only addresses it
//! checked. Plain-HTTP requests are scanned for secrets before a byte goes upstream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cordon_policy::Decision;
use cordon_policy::input::Phase;
use cordon_secrets::Scanner;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::config::ProxyConfig;
use crate::gate::{Decided, Gate, RequestInfo, audit_findings, egress};
use crate::host::{Destination, parse_authority};
use crate::resolve::Resolver;
use crate::scan::{self, Found};
use crate::splice::{Spliced, splice, splice_sockets};
use crate::upstream::{TlsUpstream, UpstreamError};
use crate::zerocopy::Raw;

type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header values policy never sees (it sees that they are present).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// A running proxy: share it between listeners.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ProxyConfig,
    gate: Gate,
    resolver: Resolver,
    scanner: Scanner,
    tunnels: Arc<Semaphore>,
    interception: Option<Interception>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Proxy {
    /// A proxy deciding with `gate`, scanning with `scanner`.
    pub fn new(
        config: ProxyConfig,
        gate: Gate,
        scanner: Scanner,
    ) -> Result<Proxy, crate::ProxyError> {
        let resolver = Resolver::new(&config.hosts).map_err(crate::ProxyError::Config)?;
        let tunnels = Arc::new(Semaphore::new(config.max_tunnels));
        let interception = match (&config.intercept, &config.ca_dir) {
            (false, _) => None,
            (true, None) => {
                return Err(crate::ProxyError::Config(
                    "interception needs a directory for the CA".into(),
                ));
            }
            (true, Some(dir)) => {
                let authority = crate::tls::Authority::load_or_create(dir)
                    .map_err(|e| crate::ProxyError::Config(e.to_string()))?;
                let client = crate::tls::client_config(config.system_roots, &config.upstream_roots)
                    .map_err(|e| crate::ProxyError::Config(e.to_string()))?;
                Some(Interception {
                    authority,
                    upstream: TlsUpstream::new(&client),
                })
            }
        };
        let metrics = gate.metrics();
        Ok(Proxy {
            shared: Arc::new(Shared {
                metrics,
                config,
                gate,
                resolver,
                scanner,
                tunnels,
                interception,
            }),
        })
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Serves `GET /metrics` (Prometheus text format) on `listener` until it fails.
    pub async fn serve_metrics(&self, listener: tokio::net::TcpListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let metrics = self.metrics();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    async move {
                        let resp = if req.method() == Method::GET && req.uri().path() == "/metrics"
                        {
                            let mut r = Response::new(
                                Full::new(Bytes::from(metrics.render()))
                                    .map_err(|never| match never {})
                                    .boxed(),
                            );
                            r.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static(
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                ),
                            );
                            r
                        } else {
                            answer(StatusCode::NOT_FOUND, "only /metrics is served here")
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// (name, placeholder) of each swapped credential, for the sandbox's environment.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.shared
            .config
            .tokens
            .iter()
            .map(|t| (t.name.clone(), t.placeholder.clone()))
            .collect()
    }

    /// The interception CA's certificate, when interception is on (for the sandbox's trust).
    pub fn ca_cert(&self) -> Option<std::path::PathBuf> {
        self.shared
            .interception
            .as_ref()
            .map(|i| i.authority.cert_path().to_owned())
    }

    /// Serves clients from a unix socket (the sandbox's bridge) until the listener fails.
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            self.spawn_connection(stream);
        }
    }

    /// Serves clients from a TCP listener (loopback by default) until it fails.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            self.spawn_connection(stream);
        }
    }

    fn spawn_connection<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let service = {
                let shared = Arc::clone(&shared);
                service_fn(move |req| handle(Arc::clone(&shared), req))
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(shared.config.max_header_bytes.max(8192))
                .header_read_timeout(Some(shared.config.header_timeout))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
    }
}

/// A short plain-text answer from the proxy itself.
fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("cordon: {text}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The answer to a denied request: 403, the policy's reasons, nothing else of the policy.
fn denied(decision: &Decision) -> Response<Body> {
    let reasons = if decision.reasons.is_empty() {
        "denied by policy".to_owned()
    } else {
        decision.reasons.join("; ")
    };
    let mut resp = answer(
        StatusCode::FORBIDDEN,
        &format!("denied by policy: {reasons}"),
    );
    resp.headers_mut()
        .insert("x-cordon-decision", HeaderValue::from_static("deny"));
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let tunnel = req.method() == Method::CONNECT;
    let resp = if tunnel {
        connect(&shared, req, started).await
    } else {
        forward(&shared, req, started).await
    };
    let status = resp.status();
    let secret =
        resp.headers().get("x-cordon-decision") == Some(&HeaderValue::from_static("secret"));
    let result = match status.as_u16() {
        100..=399 => "allowed",
        403 if secret => "blocked",
        403 if resp.headers().contains_key("x-cordon-decision") => "denied",
        403 | 413 => "blocked",
        421 => "denied",
        _ => "error",
    };
    shared
        .metrics
        .outcome(if tunnel { "tunnel" } else { "request" }, result);
    shared
        .metrics
        .latency
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// Records `event` (with a decision, when there is one); if the record cannot be written the
/// request is refused, since an unrecorded egress must not happen.
async fn record(shared: &Shared, event: cordon_audit::Event) -> Result<(), Response<Body>> {
    shared.gate.record(event).await.map_err(|e| {
        tracing::error!(error = %e, "cannot write the audit record; refusing the request");
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written",
        )
    })
}

async fn refuse(
    shared: &Shared,
    action: &str,
    target: &str,
    decision: &Decision,
    started: Instant,
    extra: serde_json::Value,
) -> Response<Body> {
    let event = egress(action, target)
        .decided(decision)
        .outcome("denied")
        .duration_ms(millis(started))
        .detail("request", extra);
    if let Err(resp) = record(shared, event).await {
        return resp;
    }
    denied(decision)
}

/// Records an operation that could not go ahead (with its error) and answers the client.
async fn failed(
    shared: &Shared,
    event: cordon_audit::Event,
    started: Instant,
    error: String,
    status: StatusCode,
    message: &str,
) -> Response<Body> {
    let event = event
        .duration_ms(millis(started))
        .detail("error", json!(error));
    if let Err(resp) = record(shared, event).await {
        return resp;
    }
    answer(status, message)
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Decides `dest` (the name first, then every address it resolves to) and returns the addresses
/// to dial, or the response that refuses it.
async fn admit(
    shared: &Shared,
    action: &str,
    dest: &Destination,
    started: Instant,
) -> Result<Vec<IpAddr>, Response<Body>> {
    let target = dest.authority();
    let literal: Vec<IpAddr> = dest.ip.into_iter().collect();
    let dns = shared
        .gate
        .network(Phase::Dns, &dest.host, dest.port, &literal, None)
        .await;
    if !dns.allow {
        return Err(refuse(
            shared,
            action,
            &target,
            &dns,
            started,
            json!({"phase": "dns"}),
        )
        .await);
    }
    let ips = match shared.resolver.resolve(&dest.host, dest.port).await {
        Ok(ips) => ips,
        Err(e) => {
            let event = egress(action, &target)
                .outcome("unresolved")
                .duration_ms(millis(started))
                .detail("error", json!(e.to_string()));
            record(shared, event).await?;
            return Err(answer(
                StatusCode::BAD_GATEWAY,
                &format!("cannot resolve {}: {e}", dest.host),
            ));
        }
    };
    let connect = shared
        .gate
        .network(Phase::Connect, &dest.host, dest.port, &ips, None)
        .await;
    if !connect.allow {
        return Err(refuse(
            shared,
            action,
            &target,
            &connect,
            started,
            json!({"phase": "connect", "ips": ips}),
        )
        .await);
    }
    Ok(ips)
}

/// Dials the checked addresses in order; never the proxy's own listeners.
async fn dial(shared: &Shared, ips: &[IpAddr], port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to dial");
    for ip in ips {
        let addr = SocketAddr::new(*ip, port);
        if shared.config.is_self(addr) {
            last = io::Error::new(
                io::ErrorKind::PermissionDenied,
                "refusing a connection back to the proxy itself",
            );
            continue;
        }
        match tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

async fn connect(shared: &Arc<Shared>, req: Request<Incoming>, started: Instant) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let dest = match parse_authority(&authority, None) {
        Ok(d) => d,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let target = dest.authority();
    let ips = match admit(shared, "connect", &dest, started).await {
        Ok(ips) => ips,
        Err(resp) => return resp,
    };
    let Ok(permit) = Arc::clone(&shared.tunnels).try_acquire_owned() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "too many open tunnels");
    };
    if shared.interception.is_some() {
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            let _permit = permit;
            shared.metrics.tunnels.inc();
            intercept(Arc::clone(&shared), req, dest, ips, started).await;
            shared.metrics.tunnels.dec();
        });
        return ok_empty();
    }
    let upstream = match dial(shared, &ips, dest.port).await {
        Ok(s) => s,
        Err(e) => {
            return failed(
                shared,
                egress("connect", &target).outcome("unreachable"),
                started,
                e.to_string(),
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {target}: {e}"),
            )
            .await;
        }
    };
    let peer = upstream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let client = hyper::upgrade::on(req).await.ok();
        let event = egress("tunnel", &target).detail("peer", json!(peer));
        let (idle, total) = (shared.config.idle_timeout, shared.config.tunnel_timeout);
        let done = async move {
            let Some(client) = client else {
                return Spliced::no_upgrade();
            };
            match plain_socket(client) {
                Ok((client, head)) => splice_sockets(client, upstream, &head, idle, total).await,
                Err(client) => splice(TokioIo::new(client), upstream, idle, total).await,
            }
        };
        tunnel(&shared, permit, done, event, started).await;
    });
    ok_empty()
}

/// The client's socket under an upgraded connection, and what hyper had read past the request,
/// when it is one of the plain sockets the proxy serves; otherwise the connection back.
fn plain_socket(
    upgraded: hyper::upgrade::Upgraded,
) -> Result<(Raw, Bytes), hyper::upgrade::Upgraded> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return Ok((Raw::Tcp(parts.io.into_inner()), parts.read_buf)),
        Err(u) => u,
    };
    match upgraded.downcast::<TokioIo<tokio::net::UnixStream>>() {
        Ok(parts) => Ok((Raw::Unix(parts.io.into_inner()), parts.read_buf)),
        Err(u) => Err(u),
    }
}

/// A tunnel's life once HTTP has stepped aside (a CONNECT, an upgrade): `splicing` carries
/// both streams under the tunnel limits; then the slot is freed (before the record is written:
/// the tunnel is closed), its bytes counted, and its record written from `event`.
async fn tunnel(
    shared: &Shared,
    permit: tokio::sync::OwnedSemaphorePermit,
    splicing: impl std::future::Future<Output = Spliced>,
    event: cordon_audit::Event,
    started: Instant,
) {
    shared.metrics.tunnels.inc();
    let done = splicing.await;
    drop(permit);
    shared.metrics.tunnels.dec();
    shared.metrics.carried("up", done.up);
    shared.metrics.carried("down", done.down);
    let event = event
        .outcome(done.outcome)
        .duration_ms(millis(started))
        .detail("bytes_up", json!(done.up))
        .detail("bytes_down", json!(done.down));
    if let Err(e) = shared.gate.record(event).await {
        tracing::error!(error = %e, "cannot write the audit record of a finished tunnel");
    }
}

fn ok_empty() -> Response<Body> {
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// A CONNECT with interception: TLS towards the client with a leaf for the CONNECT host, then
/// every request inside is scanned and decided like a plain one and sent over verified TLS.
/// The name the client asks for (SNI, then each Host header) must be the CONNECT host: one
/// tunnel cannot be used to reach another name (domain fronting).
async fn intercept(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    dest: Destination,
    ips: Vec<IpAddr>,
    started: Instant,
) {
    let target = dest.authority();
    let Some(interception) = shared.interception.as_ref() else {
        return;
    };
    let fail = |outcome: &str, error: String| {
        egress("tunnel", &target)
            .outcome(outcome)
            .duration_ms(millis(started))
            .detail("error", json!(error))
    };
    // The idle bound watches the client's side: a tunnel nobody uses is closed.
    let activity = crate::idle::Activity::new();
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(u) => crate::idle::Watched::new(TokioIo::new(u), activity.clone()),
        Err(e) => {
            let _ = shared.gate.record(fail("no upgrade", e.to_string())).await;
            return;
        }
    };
    let config = match interception.authority.server_config(&dest.host) {
        Ok(c) => c,
        Err(e) => {
            let _ = shared
                .gate
                .record(fail("tls setup error", e.to_string()))
                .await;
            return;
        }
    };
    let tls = match tokio_rustls::TlsAcceptor::from(config)
        .accept(upgraded)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let _ = shared
                .gate
                .record(fail("client tls error", e.to_string()))
                .await;
            return;
        }
    };
    if let Some(sni) = tls.get_ref().1.server_name()
        && !sni.eq_ignore_ascii_case(&dest.host)
    {
        let _ = shared
            .gate
            .record(fail(
                "refused",
                format!("SNI {sni} does not match the CONNECT host"),
            ))
            .await;
        return;
    }
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |req| {
            let (shared, dest, ips) = (Arc::clone(&shared), dest.clone(), ips.clone());
            async move { Ok::<_, Infallible>(intercepted(&shared, req, &dest, &ips).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(shared.config.max_header_bytes.max(8192))
        .header_read_timeout(Some(shared.config.header_timeout))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    let outcome = tokio::select! {
        r = tokio::time::timeout(shared.config.tunnel_timeout, conn) => match r {
            Ok(Ok(())) => "closed",
            Ok(Err(_)) => "reset",
            Err(_) => "timeout",
        },
        () = activity.idle(shared.config.idle_timeout) => "idle",
    };
    let event = egress("tunnel", &target)
        .outcome(outcome)
        .duration_ms(millis(started))
        .detail("intercepted", json!(true));
    if let Err(e) = shared.gate.record(event).await {
        tracing::error!(error = %e, "cannot write the audit record of a finished tunnel");
    }
}

/// One request inside an intercepted tunnel.
async fn intercepted(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    dest: &Destination,
    ips: &[IpAddr],
) -> Response<Body> {
    let started = Instant::now();
    let Some(interception) = shared.interception.as_ref() else {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, "interception is off");
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let same = host
        .as_deref()
        .and_then(|h| parse_authority(h, Some(dest.port)).ok())
        .is_some_and(|h| h.host == dest.host && h.port == dest.port);
    if !same {
        let event = egress("request", &dest.authority())
            .outcome("refused")
            .duration_ms(millis(started))
            .detail(
                "reason",
                json!("the Host header does not match the CONNECT host"),
            );
        if let Err(resp) = record(shared, event).await {
            return resp;
        }
        return answer(
            StatusCode::MISDIRECTED_REQUEST,
            "the Host header does not match the tunnel's destination",
        );
    }
    let request = match scanned(shared, req, dest, started).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let upstream = interception.upstream.clone();
    exchange(shared, dest, ips, request, Some(&upstream), started).await
}

/// The headers policy sees for a request-phase decision.
fn policy_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let value = if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            "[present]".to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

async fn forward(shared: &Arc<Shared>, req: Request<Incoming>, started: Instant) -> Response<Body> {
    let uri = req.uri().clone();
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "only http:// requests are forwarded; use CONNECT for https",
            );
        }
        None => {
            return answer(
                StatusCode::BAD_REQUEST,
                "this is a forward proxy: send absolute-form requests (http://host/path) or CONNECT",
            );
        }
    }
    let Some(authority) = uri.authority().map(|a| a.as_str().to_owned()) else {
        return answer(StatusCode::BAD_REQUEST, "the request has no host");
    };
    let dest = match parse_authority(&authority, Some(80)) {
        Ok(d) => d,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let request = match scanned(shared, req, &dest, started).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let ips = match admit(shared, "request", &dest, started).await {
        Ok(ips) => ips,
        Err(resp) => return resp,
    };
    exchange(shared, &dest, &ips, request, None, started).await
}

/// Reads a request's body (up to the scan limit) and scans the request for secrets; a request
/// that carries one, or cannot be scanned, is answered here and goes nowhere.
async fn scanned(
    shared: &Shared,
    req: Request<Incoming>,
    dest: &Destination,
    started: Instant,
) -> Result<Scanned, Response<Body>> {
    let target = dest.authority();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.config.max_scan_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let why = if too_large {
                format!(
                    "the request body is larger than the {} bytes the proxy scans",
                    shared.config.max_scan_bytes
                )
            } else {
                "the request body could not be read".to_owned()
            };
            let event = egress("request", &target)
                .outcome("blocked")
                .duration_ms(millis(started))
                .detail("reason", json!(why));
            record(shared, event).await?;
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Err(answer(status, &why));
        }
    };
    // Token placeholders are not secrets: the scanner sees them neutralised.
    let carried = crate::token::found(&shared.config.tokens, &path, &parts.headers, &body);
    let neutral = (!carried.is_empty())
        .then(|| crate::token::neutralised(&carried, &path, &parts.headers, &body));
    let (scan_target, scan_headers, scan_body): (&str, &HeaderMap, &[u8]) = match &neutral {
        Some((t, h, b)) => (t, h, b),
        None => (&path, &parts.headers, &body),
    };
    let scan_started = Instant::now();
    let mut found = scan::scan_head(&shared.scanner, scan_target, scan_headers);
    let body_scan = scan::encoding(&parts.headers)
        .and_then(|enc| scan::scan_body(&shared.scanner, scan_body, enc));
    shared
        .metrics
        .scan
        .observe(scan_started.elapsed().as_secs_f64());
    match body_scan {
        Ok(more) => found.extend(more),
        Err(e) => {
            let event = egress("request", &target)
                .outcome("blocked")
                .duration_ms(millis(started))
                .detail("reason", json!(e.to_string()));
            record(shared, event).await?;
            return Err(answer(
                StatusCode::FORBIDDEN,
                &format!("{e}; it is blocked"),
            ));
        }
    }
    // A git push: every ref update goes to the git policy, and the pack's objects are inflated
    // and scanned (a secret in a committed file is inside zlib streams, not in the clear).
    if is_receive_pack(&parts) {
        let push = decoded_body(&parts, &body)
            .map_err(|e| e.to_string())
            .and_then(|b| crate::pack::parse(&b).map_err(|e| e.to_string()));
        let push = match push {
            Ok(p) => p,
            Err(why) => {
                let event = egress("push", &target)
                    .outcome("blocked")
                    .duration_ms(millis(started))
                    .detail("reason", json!(why));
                record(shared, event).await?;
                return Err(answer(
                    StatusCode::FORBIDDEN,
                    &format!("{why}; the push is blocked"),
                ));
            }
        };
        let remote = format!(
            "{}://{}{}",
            parts.uri.scheme_str().unwrap_or("https"),
            target,
            path.trim_end_matches("/git-receive-pack")
        );
        for update in &push.updates {
            let decision = shared.gate.push(&remote, update).await;
            if !decision.allow {
                let event = egress("push", &target)
                    .decided(&decision)
                    .outcome("denied")
                    .duration_ms(millis(started))
                    .detail("ref", json!(update.name));
                record(shared, event).await?;
                return Err(denied(&decision));
            }
        }
        for object in &push.objects {
            let hits = shared.scanner.scan(object);
            found.extend(hits.into_iter().map(|f| Found {
                rule: f.rule,
                fingerprint: f.fingerprint,
                location: "push".into(),
                entropy: f.entropy,
            }));
        }
    }
    let mut would_deny = false;
    if !found.is_empty() {
        let decision = shared.gate.secrets(&dest.host, &found).await;
        if decision.action != Some(cordon_policy::SecretAction::Allow) {
            // Redacting an outgoing request would send something the client did not write;
            // anything but an explicit allow stops it.
            return Err(blocked_secret(shared, &target, &decision, &found, started).await);
        }
        would_deny = decision.extras.get("would_deny") == Some(&serde_json::Value::Bool(true));
    }
    // Token swap, after scanning (a placeholder is not a secret; the real value must not be
    // flagged as one on its way to the host it belongs to).
    let (mut parts, mut body) = (parts, body);
    let mut tokens = Vec::new();
    if !carried.is_empty() {
        if let Some(t) = carried.iter().find(|t| !t.allows(&dest.host)) {
            let event = egress("request", &target)
                .outcome("blocked")
                .duration_ms(millis(started))
                .detail("token", json!(t.name))
                .detail(
                    "reason",
                    json!("a token placeholder sent to a host it does not belong to"),
                );
            record(shared, event).await?;
            return Err(answer(
                StatusCode::FORBIDDEN,
                &format!(
                    "blocked: {} may only be sent to its configured hosts",
                    t.name
                ),
            ));
        }
        match crate::token::swap(&carried, &mut parts, &body) {
            Ok(b) => body = Bytes::from(b),
            Err(e) => return Err(answer(StatusCode::BAD_REQUEST, &e)),
        }
        tokens = carried.iter().map(|t| t.name.clone()).collect();
    }
    Ok(Scanned {
        parts,
        body,
        found,
        would_deny,
        tokens,
    })
}

/// Whether the request is the pack-sending half of a smart-HTTP push.
fn is_receive_pack(parts: &http::request::Parts) -> bool {
    parts.method == Method::POST && parts.uri.path().ends_with("/git-receive-pack")
}

/// The body without its Content-Encoding (git may gzip requests), bounded.
fn decoded_body(parts: &http::request::Parts, body: &Bytes) -> Result<Vec<u8>, String> {
    use std::io::Read;
    match scan::encoding(&parts.headers).map_err(|e| e.to_string())? {
        cordon_secrets::ContentEncoding::Identity => Ok(body.to_vec()),
        cordon_secrets::ContentEncoding::Gzip => {
            let mut out = Vec::new();
            let limit = crate::pack::MAX_INFLATED as u64 + 1;
            flate2::read::GzDecoder::new(body.as_ref())
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| format!("the push does not decompress: {e}"))?;
            if out.len() as u64 >= limit {
                return Err("the push decompresses past the scan limit".into());
            }
            Ok(out)
        }
        other => Err(format!(
            "a push with content-encoding {other:?} cannot be read"
        )),
    }
}

/// A request that may leave: its head and body, and the findings policy allowed (explicitly,
/// or in report mode) for its record.
struct Scanned {
    parts: http::request::Parts,
    body: Bytes,
    found: Vec<Found>,
    would_deny: bool,
    /// Credentials swapped in for their placeholders, by name.
    tokens: Vec<String>,
}

/// The request-phase decision, then the request sent to a checked address (over TLS when
/// `tls` is given: the interception path) and the answer streamed back.
async fn exchange(
    shared: &Arc<Shared>,
    dest: &Destination,
    ips: &[IpAddr],
    request: Scanned,
    tls: Option<&TlsUpstream>,
    started: Instant,
) -> Response<Body> {
    let Scanned {
        mut parts,
        body,
        found,
        would_deny: secrets_would_deny,
        tokens,
    } = request;
    // An upgrade (WebSocket) keeps its Upgrade header, and the client's side of it is taken
    // now: once the origin agrees, both sides are spliced.
    let upgrade = wants_upgrade(&parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    let target = dest.authority();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let method = parts.method.as_str().to_owned();
    let info = RequestInfo {
        scheme: scheme.into(),
        method: method.clone(),
        path: path.clone(),
        headers: policy_headers(&parts.headers),
    };
    let decision = shared
        .gate
        .network(Phase::Request, &dest.host, dest.port, ips, Some(info))
        .await;
    if !decision.allow {
        return refuse(
            shared,
            "request",
            &target,
            &decision,
            started,
            json!({"phase": "request", "scheme": scheme, "method": method, "path_bytes": path.len()}),
        )
        .await;
    }
    let tcp = match dial(shared, ips, dest.port).await {
        Ok(s) => s,
        Err(e) => {
            return failed(
                shared,
                egress("request", &target).outcome("unreachable"),
                started,
                e.to_string(),
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {target}: {e}"),
            )
            .await;
        }
    };
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(path.as_str())
        .version(http::Version::HTTP_11);
    if let Some(h) = out.headers_mut() {
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                h.append(name, value.clone());
            }
        }
        if !h.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(&dest.authority())
        {
            h.insert(header::HOST, v);
        }
        if upgrade.is_some()
            && let Some(protocol) = parts.headers.get(header::UPGRADE)
        {
            h.insert(header::UPGRADE, protocol.clone());
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    let bytes_up = body.len();
    shared.metrics.carried("up", bytes_up as u64);
    let out = match out.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let sent = crate::upstream::send(tcp, &dest.host, tls, out, upgrade.is_some()).await;
    let resp = match sent {
        Ok(r) => r,
        Err(UpstreamError::Tls(e)) => {
            return failed(
                shared,
                egress("request", &target).outcome("upstream tls error"),
                started,
                e.to_string(),
                StatusCode::BAD_GATEWAY,
                &format!("the upstream certificate of {target} is not trusted: {e}"),
            )
            .await;
        }
        Err(e) => {
            return failed(
                shared,
                egress("request", &target).outcome("upstream error"),
                started,
                e.to_string(),
                StatusCode::BAD_GATEWAY,
                &format!("upstream {target}: {e}"),
            )
            .await;
        }
    };
    let event = egress("request", &target)
        .decided(&decision)
        .outcome(resp.status().as_u16().to_string())
        .duration_ms(millis(started))
        .detail("scheme", json!(scheme))
        .detail("method", json!(method))
        .detail("bytes_up", json!(bytes_up))
        .findings(audit_findings(&found));
    let event = if secrets_would_deny {
        event.detail("secrets_would_deny", json!(true))
    } else {
        event
    };
    let event = if tokens.is_empty() {
        event
    } else {
        event.detail("tokens_swapped", json!(tokens))
    };
    if let Err(e) = shared.gate.record(event).await {
        // The request already went out: say so loudly, and do not hand back its answer.
        tracing::error!(error = %e, "cannot write the audit record of a forwarded request");
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written",
        );
    }
    if let Some(client) = upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        return switched(shared, &target, client, resp, started);
    }
    let (mut head, body) = resp.into_parts();
    for name in HOP_BY_HOP {
        head.headers.remove(*name);
    }
    Response::from_parts(head, body.boxed())
}

/// Whether a request asks to switch protocols (`Connection: upgrade` with an `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// The origin agreed to switch protocols: the 101 goes back to the client, and both upgraded
/// streams are spliced under the tunnel limits, with a tunnel record when they end. What
/// crosses an upgraded stream is not scanned, like a CONNECT tunnel without interception.
fn switched(
    shared: &Arc<Shared>,
    target: &str,
    client: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
    started: Instant,
) -> Response<Body> {
    let Ok(permit) = Arc::clone(&shared.tunnels).try_acquire_owned() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "too many open tunnels");
    };
    let origin = hyper::upgrade::on(&mut resp);
    let protocol = resp
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (shared, target) = (Arc::clone(shared), target.to_owned());
    tokio::spawn(async move {
        let event = egress("tunnel", &target).detail("upgrade", json!(protocol));
        let (idle, total) = (shared.config.idle_timeout, shared.config.tunnel_timeout);
        let done = async move {
            match tokio::try_join!(client, origin) {
                Ok((c, o)) => splice(TokioIo::new(c), TokioIo::new(o), idle, total).await,
                Err(_) => Spliced::no_upgrade(),
            }
        };
        tunnel(&shared, permit, done, event, started).await;
    });
    let (mut head, _) = resp.into_parts();
    for name in HOP_BY_HOP {
        if *name != "upgrade" {
            head.headers.remove(*name);
        }
    }
    head.headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    Response::from_parts(
        head,
        Full::new(Bytes::new()).map_err(|n| match n {}).boxed(),
    )
}

/// TLS interception: the local CA's leaves towards the client, verified TLS upstream.
#[derive(Debug)]
struct Interception {
    authority: crate::tls::Authority,
    upstream: TlsUpstream,
}

async fn blocked_secret(
    shared: &Shared,
    target: &str,
    decision: &Decision,
    found: &[Found],
    started: Instant,
) -> Response<Body> {
    let rules: Vec<&str> = found.iter().map(|f| f.rule.as_str()).collect();
    let event = egress("request", target)
        .decided(decision)
        .outcome("blocked")
        .duration_ms(millis(started))
        .findings(audit_findings(found))
        .detail(
            "locations",
            json!(
                found
                    .iter()
                    .map(|f| f.location.as_str())
                    .collect::<Vec<_>>()
            ),
        );
    if let Err(resp) = record(shared, event).await {
        return resp;
    }
    let mut resp = answer(
        StatusCode::FORBIDDEN,
        &format!(
            "blocked: the request carries a secret ({}); remove it or ask for the destination to be allowed",
            rules.join(", ")
        ),
    );
    resp.headers_mut()
        .insert("x-cordon-decision", HeaderValue::from_static("secret"));
    resp
}
