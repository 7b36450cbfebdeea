//! Rule files in gitleaks' format load as they are. The file here is our own, exercising each
//! feature of the format.

use cordon_secrets::{RuleError, Scanner};

const TEAM_RULES: &str = r#"
title = "team rules"

[extend]
useDefault = true
disabledRules = ["mailgun-api-key"]

[allowlist]
description = "test fixtures are fake"
paths = ['''(^|/)testdata/''']

[[rules]]
id = "acme-internal-token"
description = "ACME internal service token"
regex = '''\b(acme_(?:live|test)_([a-z0-9]{24}))\b'''
secretGroup = 2
keywords = ["acme_live_", "acme_test_"]
entropy = 3.0
tags = ["internal"]

[[rules.allowlists]]
description = "the shared test account"
regexTarget = "match"
regexes = ['''^acme_test_''']

[[rules]]
id = "acme-config-only"
description = "ACME tokens only count in deploy configs"
regex = '''\b(acmecfg_[a-z0-9]{16})\b'''
keywords = ["acmecfg_"]
path = '''(^|/)deploy/.*\.ya?ml$'''

[[rules]]
id = "old-style-allowlist"
description = "A rule with the pre-8.21 single allowlist table"
regex = '''\b(oldtok_[a-z0-9]{16})\b'''
keywords = ["oldtok_"]

[rules.allowlist]
stopwords = ["0000"]
"#;

fn team() -> Scanner {
    Scanner::builder()
        .with_rules_toml(TEAM_RULES)
        .unwrap()
        .build()
        .unwrap()
}

fn rules_found(scanner: &Scanner, text: &str, path: Option<&str>) -> Vec<String> {
    scanner
        .scan_path(text.as_bytes(), path)
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn use_default_keeps_the_built_in_rules_and_disabled_rules_go() {
    let s = team();
    assert!(s.rules().iter().any(|r| r.id == "github-pat"));
    assert!(s.rules().iter().all(|r| r.id != "mailgun-api-key"));
    assert!(
        rules_found(&s, "ghp_0123456789abcdefghijABCDEFGHIJ012345", None)
            .contains(&"github-pat".to_owned())
    );
    assert!(rules_found(&s, "key-0123456789abcdef0123456789abcdef", None).is_empty());
}

#[test]
fn secret_group_keywords_and_entropy() {
    let s = team();
    let text = "svc=acme_live_k3j5h7g9f1d2s4a6q8w0e2r4";
    let f = s.scan(text.as_bytes());
    let f = f.iter().find(|f| f.rule == "acme-internal-token").unwrap();
    assert_eq!(
        &text[f.start as usize..f.end as usize],
        "k3j5h7g9f1d2s4a6q8w0e2r4"
    );
    // Low entropy: not a secret.
    assert!(rules_found(&s, "acme_live_aaaaaaaaaaaaaaaaaaaaaaaa", None).is_empty());
}

#[test]
fn per_rule_allowlist_with_match_target() {
    let s = team();
    assert!(rules_found(&s, "acme_test_k3j5h7g9f1d2s4a6q8w0e2r4", None).is_empty());
}

#[test]
fn old_style_allowlist_table() {
    let s = team();
    assert!(
        rules_found(&s, "oldtok_a1b2c3d4e5f6a7b8", None)
            .contains(&"old-style-allowlist".to_owned())
    );
    assert!(rules_found(&s, "oldtok_a1b20000e5f6a7b8", None).is_empty());
}

#[test]
fn path_rules_and_global_path_allowlist() {
    let s = team();
    let text = "token: acmecfg_a1b2c3d4e5f6a7b8";
    assert_eq!(
        rules_found(&s, text, Some("deploy/prod.yaml")),
        ["acme-config-only"]
    );
    assert!(rules_found(&s, text, Some("src/main.rs")).is_empty());
    assert!(
        rules_found(&s, text, None).is_empty(),
        "path rules apply to files only"
    );
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    assert!(rules_found(&s, token, Some("pkg/testdata/fixture.txt")).is_empty());
    assert!(!rules_found(&s, token, Some("pkg/src/fixture.txt")).is_empty());
}

#[test]
fn without_use_default_only_the_files_rules_run() {
    let text = TEAM_RULES.replace("useDefault = true", "useDefault = false");
    let s = Scanner::builder()
        .with_rules_toml(&text)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(s.rules().len(), 3);
}

#[test]
fn errors_name_the_rule_and_the_problem() {
    let cases = [
        (
            "[[rules]]\nid = \"x\"\nregex = '''(unclosed'''\n",
            "rule x: regex does not compile",
        ),
        (
            "[[rules]]\nid = \"x\"\nregex = '''a'''\nsecretGroup = 3\n",
            "secretGroup 3 but the regex has 0 group(s)",
        ),
        (
            "[[rules]]\nid = \"x\"\nregex = '''a'''\nentropy = 9.5\n",
            "entropy must be between 0 and 8",
        ),
        (
            "[[rules]]\nid = \"x\"\nregex = '''a'''\nkeyword = [\"a\"]\n",
            "unknown field `keyword`",
        ),
        (
            "[[rules]]\nid = \"x\"\nregex = '''a'''\n[[rules]]\nid = \"x\"\nregex = '''b'''\n",
            "defined twice",
        ),
        ("[[rules]]\nid = \"x\"\npath = '''a'''\n", "has no regex"),
        (
            "[[rules]]\nid = \"x\"\nregex = '''a'''\n[[rules.allowlists]]\ncondition = \"XOR\"\n",
            "condition \"XOR\"",
        ),
        ("[extend]\npath = \"other.toml\"\n", "is not supported"),
        ("[[rules]\n", "does not parse"),
    ];
    for (text, says) in cases {
        let err: RuleError = Scanner::builder().with_rules_toml(text).unwrap_err();
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
}
