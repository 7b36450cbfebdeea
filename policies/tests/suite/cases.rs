//! Decisions of the default policy set, as data: `tests/cases/*.json`. Each case gives the
//! config, the area, the input, and what the decision must be.

use cordon_policy::{AreaInput, LoadOptions, PolicyConfig, PolicyLocation};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    config: Value,
    area: cordon_policy::Area,
    input: Value,
    allow: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

#[test]
fn default_policy_decisions_match_the_case_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut ran = 0;
    // One compiled set per distinct config; the Rego tests run in their own test.
    let mut sets: std::collections::HashMap<String, cordon_policy::PolicySet> = Default::default();
    let opts = LoadOptions {
        require_tests_pass: false,
        decision_cache: 0,
        ..LoadOptions::default()
    };
    let mut cached_sets: std::collections::HashMap<String, cordon_policy::PolicySet> =
        Default::default();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in cases {
            let config: PolicyConfig = if case.config.is_null() {
                PolicyConfig::default()
            } else {
                serde_json::from_value(case.config.clone()).unwrap()
            };
            let set = sets
                .entry(case.config.to_string())
                .or_insert_with(|| PolicyLocation::Embedded.load(&config, &opts).unwrap());
            let (ctx, input) = AreaInput::from_json(case.area, case.input.clone())
                .unwrap_or_else(|e| panic!("{}: bad input: {e}", case.name));
            let d = set.decide(&ctx, &input);
            // The verdict cache (on by default) must answer exactly what evaluation answers.
            let cached = cached_sets
                .entry(case.config.to_string())
                .or_insert_with(|| {
                    PolicyLocation::Embedded
                        .load(
                            &config,
                            &LoadOptions {
                                require_tests_pass: false,
                                ..LoadOptions::default()
                            },
                        )
                        .unwrap()
                });
            assert_eq!(
                cached.decide(&ctx, &input),
                d,
                "{}: first, uncached",
                case.name
            );
            assert_eq!(
                cached.decide(&ctx, &input),
                d,
                "{}: second, from the cache",
                case.name
            );
            assert_eq!(d.allow, case.allow, "{}: {:?}", case.name, d.reasons);
            assert_eq!(
                d.fallback, None,
                "{}: not the policy's own answer: {:?}",
                case.name, d.reasons
            );
            if let Some(reason) = &case.reason {
                assert!(
                    d.reasons.iter().any(|r| r.contains(reason.as_str())),
                    "{}: no reason contains {reason:?}: {:?}",
                    case.name,
                    d.reasons
                );
            }
            if let Some(action) = &case.action {
                let got = serde_json::to_value(d.action).unwrap();
                assert_eq!(got, Value::String(action.clone()), "{}", case.name);
            }
            ran += 1;
        }
    }
    assert!(ran >= 30, "only {ran} cases ran");
}

#[test]
fn default_policy_tests_pass() {
    let set = PolicyLocation::Embedded
        .load(&PolicyConfig::default(), &LoadOptions::default())
        .unwrap();
    assert!(set.tests().cases.len() >= 45, "{}", set.tests().cases.len());
    assert_eq!(set.tests().failed(), 0, "{:?}", set.tests().failing());
}

/// Regression: the default tests once read the operator's config, so `deny_read = [".env"]`
/// made a default test fail and the whole default set was refused at start.
#[test]
fn default_policy_tests_do_not_depend_on_the_operators_config() {
    let config: PolicyConfig = serde_json::from_value(serde_json::json!({
        "network": {"allow": ["github.com", "*.example.com"], "presets": ["github"], "allow_addresses": ["0.0.0.0/0", "::/0"]},
        "files": {"protect": ["**"], "deny_read": ["**"]},
        "git": {"protected_branches": ["*", "**/*"], "allow_force_push": true},
        "tools": {"deny": ["exec", "read_file", "git_push"]},
        "secrets": {"egress": "allow", "tool_output": "block", "file_write": "block", "git_push": "allow", "rules": {"jwt": "allow"}},
    }))
    .unwrap();
    let set = PolicyLocation::Embedded.load(&config, &LoadOptions::default());
    assert!(set.is_ok(), "{:?}", set.err());
}
