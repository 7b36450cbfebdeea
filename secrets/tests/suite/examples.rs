//! Every built-in rule finds its positive examples and none of its negative ones.

use std::collections::BTreeSet;

use cordon_secrets::{Scanner, redact};

use super::examples;

#[test]
fn every_rule_has_examples_and_they_pass() {
    let scanner = Scanner::with_defaults().unwrap();
    let examples = examples();
    let rules: BTreeSet<&str> = scanner.rules().iter().map(|r| r.id.as_str()).collect();
    let covered: BTreeSet<&str> = examples.example.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(
        rules, covered,
        "rules without examples, or examples without rules"
    );
    let mut failures = Vec::new();
    for ex in &examples.example {
        assert!(
            !ex.positive.is_empty() && !ex.negative.is_empty(),
            "{}",
            ex.rule
        );
        for p in &ex.positive {
            let found = scanner.scan(p.as_bytes());
            if !found.iter().any(|f| f.rule == ex.rule) {
                failures.push(format!("{}: missed positive {p:?}", ex.rule));
            }
        }
        for n in &ex.negative {
            let found = scanner.scan(n.as_bytes());
            if found.iter().any(|f| f.rule == ex.rule) {
                failures.push(format!("{}: flagged negative {n:?}", ex.rule));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn findings_carry_span_line_entropy_and_fingerprint_but_not_the_secret() {
    let scanner = Scanner::with_defaults().unwrap();
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let text = format!("line one\nexport GH={token}\n");
    let found = scanner.scan(text.as_bytes());
    let f = found.iter().find(|f| f.rule == "github-pat").unwrap();
    assert_eq!(&text[f.start as usize..f.end as usize], token);
    assert_eq!(f.line, 2);
    assert!(f.entropy > 4.0);
    assert_eq!(f.fingerprint.len(), 16);
    assert!(f.secret.is_none());
    assert!(
        !format!("{f:?}").contains(token),
        "Debug output must not show the secret"
    );
}

#[test]
fn reveal_is_opt_in() {
    let scanner = Scanner::builder()
        .with_defaults()
        .unwrap()
        .reveal(true)
        .build()
        .unwrap();
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let f = scanner.scan(token.as_bytes()).into_iter().next().unwrap();
    assert_eq!(f.secret.as_deref(), Some(token));
}

#[test]
fn fingerprints_are_keyed_and_stable() {
    let a = Scanner::builder()
        .with_defaults()
        .unwrap()
        .fingerprint_key(b"key-a")
        .build()
        .unwrap();
    let b = Scanner::builder()
        .with_defaults()
        .unwrap()
        .fingerprint_key(b"key-b")
        .build()
        .unwrap();
    let input = b"ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let fa = &a.scan(input)[0].fingerprint;
    assert_eq!(fa, &a.scan(input)[0].fingerprint);
    assert_ne!(fa, &b.scan(input)[0].fingerprint);
    assert!(
        fa.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn redact_replaces_every_secret() {
    let scanner = Scanner::with_defaults().unwrap();
    let text = "a=ghp_0123456789abcdefghijABCDEFGHIJ012345 b=AKIAPYCDYBK377OXTZQ6 done";
    let found = scanner.scan(text.as_bytes());
    let red = String::from_utf8(redact(text.as_bytes(), &found)).unwrap();
    assert_eq!(
        red,
        "a=[REDACTED:github-pat] b=[REDACTED:aws-access-key-id] done"
    );
}

#[test]
fn redact_merges_overlapping_findings() {
    let scanner = Scanner::with_defaults().unwrap();
    // The same token is a GitHub token inside a URL password.
    let text = "https://x:ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/o/r";
    let found = scanner.scan(text.as_bytes());
    assert!(found.len() >= 2, "{found:?}");
    let red = String::from_utf8(redact(text.as_bytes(), &found)).unwrap();
    assert!(!red.contains("ghp_"), "{red}");
    assert_eq!(red.matches("[REDACTED:").count(), 1, "{red}");
}

#[test]
fn binary_and_invalid_utf8_input_is_scanned() {
    let scanner = Scanner::with_defaults().unwrap();
    let mut input = vec![0xff, 0xfe, 0x00, 0x80];
    input.extend_from_slice(b"ghp_0123456789abcdefghijABCDEFGHIJ012345");
    input.extend_from_slice(&[0xc3, 0x28, 0x00]);
    let found = scanner.scan(&input);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].start, found[0].end), (4, 44));
}

#[test]
fn a_known_format_is_not_reported_again_by_the_generic_rule() {
    let scanner = Scanner::with_defaults().unwrap();
    let found = scanner.scan(b"GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345\n");
    let rules: Vec<&str> = found.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["github-pat"]);
    // An unknown format under the same name is still caught by the generic rule.
    let found = scanner.scan(b"GITHUB_TOKEN=Zq8Xw2Lp9Rv4Tn6Ym1Kb3Hc5Jd7Fg0Se\n");
    assert_eq!(
        found.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        ["generic-secret-assignment"]
    );
}
