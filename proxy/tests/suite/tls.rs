//! TLS interception with real curl and a real TLS origin: decrypted, scanned and decided like
//! plain HTTP; upstream certificates verified; one tunnel, one name.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::harness::*;

/// A TLS origin on 127.0.0.1 with a certificate for `name` from its own CA.
pub struct TlsOrigin {
    pub port: u16,
    pub ca: PathBuf,
    pub received: Arc<Mutex<Vec<u8>>>,
    _issued: Issued,
}

/// A certificate for one name from a CA of its own, as files (for Python servers) and as a
/// rustls server configuration.
pub struct Issued {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: rustls::pki_types::PrivateKeyDer<'static>,
}

pub fn issue(name: &str) -> Issued {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test origin CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = dir.path().join("origin-ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let cert = dir.path().join("leaf.pem");
    let key = dir.path().join("leaf.key");
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    Issued {
        ca,
        cert,
        key,
        _dir: dir,
        chain: vec![leaf.der().clone()],
        key_der,
    }
}

impl Issued {
    /// A server configuration offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key_der.clone_key())
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

pub fn tls_origin(name: &str) -> TlsOrigin {
    let issued = issue(name);
    let config = issued.server_config(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { return };
            let (config, sink) = (Arc::clone(&config), Arc::clone(&sink));
            std::thread::spawn(move || {
                let Ok(server) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(server, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                sink.lock().unwrap().extend_from_slice(&head);
                let body = "hello from tls origin";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsOrigin {
        port,
        ca: issued.ca.clone(),
        received,
        _issued: issued,
    }
}

pub fn intercepting(
    origin: &TlsOrigin,
    trust_origin: bool,
) -> (Running, PathBuf, tempfile::TempDir) {
    intercepting_ca(&origin.ca, trust_origin)
}

/// An intercepting proxy for `secure.test`, trusting `origin_ca` upstream when `trust_origin`.
pub fn intercepting_ca(
    origin_ca: &std::path::Path,
    trust_origin: bool,
) -> (Running, PathBuf, tempfile::TempDir) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca");
    let roots = if trust_origin {
        vec![origin_ca.to_owned()]
    } else {
        Vec::new()
    };
    let ca2 = ca.clone();
    let p = proxy_with(
        &["secure.test"],
        &[("secure.test", "127.0.0.1")],
        move |c| {
            c.intercept = true;
            c.ca_dir = Some(ca2);
            c.system_roots = false;
            c.upstream_roots = roots;
        },
    );
    (p, ca.join("ca.pem"), ca_dir)
}

#[test]
fn intercepts_https_and_forwards_a_clean_request() {
    let origin = tls_origin("secure.test");
    let (p, cordon_ca, _keep) = intercepting(&origin, true);
    let url = format!("https://secure.test:{}/api?x=1", origin.port);
    let (code, body, out) = p.curl(&["--cacert", cordon_ca.to_str().unwrap(), &url]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(body, "hello from tls origin");
    let seen = String::from_utf8_lossy(&origin.received.lock().unwrap()).into_owned();
    assert!(seen.starts_with("GET /api?x=1 HTTP/1.1"), "{seen}");
    let rec = p
        .records()
        .into_iter()
        .find(|r| r["action"] == "request")
        .unwrap();
    assert_eq!(rec["detail"]["scheme"], "https");
    assert_eq!(rec["decision"]["allow"], true);
    // The CA key is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let key = cordon_ca.with_file_name("ca.key");
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn blocks_a_secret_inside_https() {
    let origin = tls_origin("secure.test");
    let (p, cordon_ca, _keep) = intercepting(&origin, true);
    let url = format!("https://secure.test:{}/", origin.port);
    let (code, body, _) = p.curl(&[
        "--cacert",
        cordon_ca.to_str().unwrap(),
        "-H",
        "Authorization: token ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK",
        &url,
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("carries a secret"));
    assert!(
        origin.received.lock().unwrap().is_empty(),
        "the origin received the request"
    );
}

#[test]
fn refuses_an_untrusted_upstream_certificate() {
    let origin = tls_origin("secure.test");
    let (p, cordon_ca, _keep) = intercepting(&origin, false);
    let url = format!("https://secure.test:{}/", origin.port);
    let (code, body, _) = p.curl(&["--cacert", cordon_ca.to_str().unwrap(), &url]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("not trusted"), "{body}");
    assert!(origin.received.lock().unwrap().is_empty());
}

#[test]
fn refuses_domain_fronting_inside_a_tunnel() {
    let origin = tls_origin("secure.test");
    let (p, cordon_ca, _keep) = intercepting(&origin, true);
    let url = format!("https://secure.test:{}/", origin.port);
    let (code, body, _) = p.curl(&[
        "--cacert",
        cordon_ca.to_str().unwrap(),
        "-H",
        "Host: other.test",
        &url,
    ]);
    assert_eq!(code, 421, "{body}");
    assert!(origin.received.lock().unwrap().is_empty());
}

#[test]
fn without_interception_https_is_a_verified_tunnel() {
    let origin = tls_origin("secure.test");
    let p = proxy(&["secure.test"], &[("secure.test", "127.0.0.1")]);
    let url = format!("https://secure.test:{}/", origin.port);
    let (code, body, out) = p.curl(&["--cacert", origin.ca.to_str().unwrap(), &url]);
    assert_eq!(code, 200, "{body} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(body, "hello from tls origin");
}

/// An HTTPS origin that offers HTTP/2 (hyper) and answers with the version it was spoken to in
/// and the authority it was asked for.
fn h2_origin(issued: &Issued) -> (u16, tokio::runtime::Runtime) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(issued.server_config(&[b"h2", b"http/1.1"]));
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let text = format!(
                            "{:?} {} {}",
                            req.version(),
                            req.uri().authority().map_or("-", |a| a.as_str()),
                            req.uri().path()
                        );
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, runtime)
}

#[test]
fn speaks_http2_to_an_origin_that_offers_it() {
    let issued = issue("secure.test");
    let (port, _origin) = h2_origin(&issued);
    let (p, cordon_ca, _keep) = intercepting_ca(&issued.ca, true);
    let url = format!("https://secure.test:{port}/v2/path");
    let (code, body, out) = p.curl(&["--cacert", cordon_ca.to_str().unwrap(), &url]);
    assert_eq!(code, 200, "{body} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(body, format!("HTTP/2.0 secure.test:{port} /v2/path"));
    // And a secret is still caught before the HTTP/2 connection is made.
    let (code, _, _) = p.curl(&[
        "--cacert",
        cordon_ca.to_str().unwrap(),
        "-H",
        "Authorization: token ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK",
        &url,
    ]);
    assert_eq!(code, 403);
}
