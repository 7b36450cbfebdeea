//! Token swap: the sandbox holds a placeholder; the real credential goes only to its hosts.

use cordon_proxy::token::Token;

use super::harness::*;

const REAL: &str = "ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK";

#[test]
fn swaps_a_placeholder_only_for_its_hosts() {
    let origin = Origin::start();
    let token = Token::new("GITHUB_TOKEN", REAL, &["tok.test".into()]);
    let placeholder = token.placeholder.clone();
    let t = token.clone();
    let p = proxy_with(
        &["tok.test", "other.test"],
        &[("tok.test", "127.0.0.1"), ("other.test", "127.0.0.1")],
        move |c| c.tokens = vec![t],
    );
    assert!(!placeholder.contains(REAL));

    // A bearer header, Basic credentials (as git sends them) and a query parameter.
    let url = format!(
        "http://tok.test:{}/api?access_token={placeholder}",
        origin.port
    );
    let (code, body, _) = p.curl(&["-H", &format!("Authorization: Bearer {placeholder}"), &url]);
    assert_eq!(code, 200, "{body}");
    assert!(origin.saw(&format!("Bearer {REAL}")));
    assert!(origin.saw(&format!("access_token={REAL}")));
    assert!(!origin.saw(&placeholder));
    let (code, body, _) = p.curl(&["-u", &format!("x-access-token:{placeholder}"), &url]);
    assert_eq!(code, 200, "{body}");
    let basic = base64_of(&format!("x-access-token:{REAL}"));
    assert!(origin.saw(&basic), "Basic credentials swapped");
    let rec = p.last();
    assert_eq!(rec["detail"]["tokens_swapped"][0], "GITHUB_TOKEN");

    // Anywhere else, the placeholder is blocked and recorded; the real value goes nowhere.
    let before = origin.bytes();
    let (code, body, _) = p.curl(&[
        "-H",
        &format!("Authorization: Bearer {placeholder}"),
        &format!("http://other.test:{}/", origin.port),
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("GITHUB_TOKEN may only be sent to its configured hosts"),
        "{body}"
    );
    assert_eq!(origin.bytes(), before);
    assert_eq!(p.last()["detail"]["token"], "GITHUB_TOKEN");
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(!log.contains(REAL), "the real token is in the audit log");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
