//! The operator's real secrets are found verbatim and in their common encodings.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use cordon_secrets::Scanner;

const VALUE: &str = "s3cr3t-Vault/Token+42=";

fn scanner() -> Scanner {
    Scanner::builder()
        .exact_secret("VAULT_TOKEN", VALUE.as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

fn found(input: &str) -> bool {
    scanner()
        .scan(input.as_bytes())
        .iter()
        .any(|f| f.rule == "exact-secret")
}

#[test]
fn verbatim_and_every_encoding() {
    let s = scanner();
    let mut forms = vec![
        VALUE.to_owned(),
        VALUE
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D"),
        hex::encode(VALUE),
        hex::encode_upper(VALUE),
    ];
    for prefix in ["", "a", "ab"] {
        let text = format!("{prefix}{VALUE}");
        forms.push(STANDARD.encode(&text));
        forms.push(URL_SAFE.encode(&text));
    }
    for form in forms {
        let input = format!("header: x\nbody={form}&done=1\n");
        assert!(
            s.scan(input.as_bytes())
                .iter()
                .any(|f| f.rule == "exact-secret"),
            "missed {form}"
        );
    }
}

#[test]
fn json_escaped_values() {
    let s = Scanner::builder()
        .exact_secret("DB_PASSWORD", b"pa\"ss\\word-99")
        .unwrap()
        .build()
        .unwrap();
    let input = r#"{"password": "pa\"ss\\word-99"}"#;
    assert!(
        s.scan(input.as_bytes())
            .iter()
            .any(|f| f.rule == "exact-secret")
    );
}

#[test]
fn description_names_the_secret_not_the_value() {
    let s = scanner();
    let rule = s.rules().iter().find(|r| r.id == "exact-secret").unwrap();
    assert_eq!(rule.description, "the value of VAULT_TOKEN");
    assert!(!rule.description.contains(VALUE));
}

#[test]
fn near_misses_are_not_found() {
    assert!(!found("s3cr3t-Vault/Token+41="));
    assert!(
        !found("S3CR3T-VAULT/TOKEN+42="),
        "exact secrets are case-sensitive"
    );
}

#[test]
fn short_values_are_refused() {
    let err = Scanner::builder().exact_secret("PIN", b"1234").unwrap_err();
    assert!(err.to_string().contains("shorter than 8 bytes"), "{err}");
}
