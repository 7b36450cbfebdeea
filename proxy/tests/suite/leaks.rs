//! A planted secret in every place a request can carry one: blocked before a byte reaches the
//! origin, and audited by rule id and fingerprint only.

use std::io::{Read, Write};

use super::harness::*;

const TOKEN: &str = "ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK";
const WEBHOOK: &str =
    "https://hooks.slack.com/services/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";

fn blocked(p: &Running, origin: &Origin, args: &[&str], rule: &str) {
    let (code, body, out) = p.curl(args);
    assert_eq!(
        code,
        403,
        "{args:?}: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("carries a secret"), "{body}");
    assert!(!body.contains(TOKEN) && !body.contains("4fg2tOnimj3TceN3EtGnPZt7"));
    let rec = p.last();
    assert_eq!(rec["outcome"], "blocked", "{rec}");
    assert!(
        rec["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == rule),
        "{args:?}: {rec}"
    );
    let text = std::fs::read_to_string(&p.log).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains("4fg2tOnimj3TceN3EtGnPZt7"),
        "secret in the audit log"
    );
    assert_eq!(origin.bytes(), 0, "{args:?}: the origin received something");
}

fn setup() -> (Running, Origin, String) {
    let origin = Origin::start();
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    let url = format!("http://upstream.test:{}", origin.port);
    (p, origin, url)
}

#[test]
fn blocks_a_secret_in_the_path_query_headers_and_cookies() {
    let (p, origin, url) = setup();
    blocked(
        &p,
        &origin,
        &[&format!("{url}/repos/{TOKEN}")],
        "github-pat",
    );
    blocked(
        &p,
        &origin,
        &[&format!("{url}/search?q=x&token={TOKEN}")],
        "github-pat",
    );
    blocked(
        &p,
        &origin,
        &["-H", &format!("X-Token: {TOKEN}"), &url],
        "github-pat",
    );
    blocked(
        &p,
        &origin,
        &["-H", &format!("Authorization: token {TOKEN}"), &url],
        "github-pat",
    );
    blocked(
        &p,
        &origin,
        &["-b", &format!("session={TOKEN}"), &url],
        "github-pat",
    );
}

#[test]
fn blocks_a_secret_in_json_form_and_multipart_bodies() {
    let (p, origin, url) = setup();
    let json = format!("{{\"note\":\"hi\",\"token\":\"{TOKEN}\"}}");
    blocked(
        &p,
        &origin,
        &[
            "-H",
            "content-type: application/json",
            "--data",
            &json,
            &url,
        ],
        "github-pat",
    );
    blocked(
        &p,
        &origin,
        &["--data-urlencode", &format!("hook={WEBHOOK}"), &url],
        "slack-webhook",
    );
    let b64 = base64_encode(format!("token={TOKEN}").as_bytes());
    blocked(
        &p,
        &origin,
        &["--data", &format!("payload={b64}"), &url],
        "github-pat",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, format!("deploy notes\nGH={TOKEN}\n")).unwrap();
    blocked(
        &p,
        &origin,
        &["-F", &format!("file=@{}", file.display()), &url],
        "github-pat",
    );
}

#[test]
fn blocks_a_secret_in_a_gzip_body() {
    let (p, origin, url) = setup();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("body.json");
    std::fs::write(&plain, format!("{{\"token\":\"{TOKEN}\"}}").repeat(50)).unwrap();
    let status = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    let gz = dir.path().join("body.json.gz");
    blocked(
        &p,
        &origin,
        &[
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            &format!("@{}", gz.display()),
            &url,
        ],
        "github-pat",
    );
    // A coding the proxy cannot decode is blocked: it cannot be scanned.
    let (code, body, _) = p.curl(&["-H", "Content-Encoding: zstd", "--data-binary", "xyz", &url]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cannot be scanned"), "{body}");
    assert_eq!(origin.bytes(), 0);
}

#[test]
fn blocks_a_secret_split_across_chunks() {
    let (p, origin, _) = setup();
    let (a, b) = TOKEN.split_at(17);
    let body = format!(
        "{:x}\r\n{{\"token\":\"{a}\r\n{:x}\r\n{b}\"}}\r\n0\r\n\r\n",
        10 + a.len(),
        b.len() + 2
    );
    let request = format!(
        "POST http://upstream.test:{}/upload HTTP/1.1\r\nHost: upstream.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        origin.port
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert_eq!(origin.bytes(), 0);
    assert_eq!(p.last()["outcome"], "blocked");
}

#[test]
fn blocks_a_body_too_large_to_scan() {
    let (p, origin, url) = setup();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; (1 << 20) + 10]).unwrap();
    let (code, body, _) = p.curl(&["--data-binary", &format!("@{}", big.display()), &url]);
    assert_eq!(code, 413, "{body}");
    assert_eq!(origin.bytes(), 0);
    // A clean body under the limit goes through.
    let (code, _, _) = p.curl(&["--data", "hello=world", &url]);
    assert_eq!(code, 200);
    assert!(origin.saw("hello=world"));
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
