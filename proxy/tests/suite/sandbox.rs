//! The whole path: a command in the sandbox, the bridge, the proxy's unix socket, policy, and a
//! server on the host's loopback.

use std::time::Duration;

use cordon_sandbox::{Command, Sandbox, SandboxConfig, Stream};

use super::harness::*;

fn run(sb: &Sandbox, script: &str) -> String {
    let mut out = Vec::new();
    let outcome = sb
        .run(&Command::new(["/bin/sh", "-c", script]), &mut |s, b| {
            if s == Stream::Stdout {
                out.extend_from_slice(b);
            }
        })
        .unwrap();
    assert!(outcome.exit.success(), "{outcome:?}");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_sandboxed_curl_reaches_exactly_what_policy_allows() {
    let origin = Origin::start();
    let p = proxy(
        &["upstream.test"],
        &[("upstream.test", "127.0.0.1"), ("other.test", "127.0.0.1")],
    );
    let ws = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(ws.path());
    config.proxy_socket = Some(p.socket.clone());
    config.limits.timeout = Duration::from_secs(20);
    let sb = Sandbox::new(config).unwrap();
    let port = origin.port;
    let out = run(
        &sb,
        &format!(
            "curl -s -m 5 -w ' %{{http_code}}\\n' http://upstream.test:{port}/in; \
             curl -s -m 5 -w ' %{{http_code}}\\n' http://other.test:{port}/no; \
             curl -s -m 5 -w ' %{{http_code}}\\n' -H 'X-Token: ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK' http://upstream.test:{port}/leak; \
             curl -s -m 5 --noproxy '*' http://127.0.0.1:{port}/direct || echo direct-refused"
        ),
    );
    assert!(out.contains("hello from origin 200"), "{out}");
    assert!(
        out.contains("cordon: denied by policy: host other.test"),
        "{out}"
    );
    assert!(
        out.contains("the request carries a secret (github-pat)"),
        "{out}"
    );
    assert_eq!(out.matches(" 403").count(), 2, "{out}");
    assert!(out.ends_with("direct-refused\n"), "{out}");
    assert!(origin.saw("GET /in HTTP/1.1"));
    assert!(!origin.saw("/no") && !origin.saw("/leak") && !origin.saw("/direct"));
    let records = p.records();
    assert!(records.iter().all(|r| r["sandbox"] == "test"));
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "egress").count(),
        3,
        "{records:?}"
    );
}

#[test]
fn a_sandboxed_https_request_is_intercepted_and_scanned() {
    let origin = super::tls::tls_origin("secure.test");
    let (p, cordon_ca, _keep) = super::tls::intercepting(&origin, true);
    let ws = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(ws.path());
    config.proxy_socket = Some(p.socket.clone());
    config.ca_file = Some(cordon_ca);
    config.limits.timeout = Duration::from_secs(20);
    let sb = Sandbox::new(config).unwrap();
    let port = origin.port;
    let out = run(
        &sb,
        &format!(
            "curl -sS -m 5 https://secure.test:{port}/in; echo; \
             curl -sS -m 5 -H 'Authorization: token ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK' https://secure.test:{port}/leak"
        ),
    );
    assert!(out.starts_with("hello from tls origin\n"), "{out}");
    assert!(out.contains("carries a secret"), "{out}");
    let seen = String::from_utf8_lossy(&origin.received.lock().unwrap()).into_owned();
    assert!(
        seen.contains("GET /in") && !seen.contains("/leak"),
        "{seen}"
    );
}
