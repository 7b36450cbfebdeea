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
    _dir: tempfile::TempDir,
}

pub fn tls_origin(name: &str) -> TlsOrigin {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test origin CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.path().join("origin-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap(),
    );
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
        ca: ca_path,
        received,
        _dir: dir,
    }
}

pub fn intercepting(
    origin: &TlsOrigin,
    trust_origin: bool,
) -> (Running, PathBuf, tempfile::TempDir) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca");
    let roots = if trust_origin {
        vec![origin.ca.clone()]
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
