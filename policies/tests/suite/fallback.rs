//! Every way a decision can fail must deny, and say which way it failed.

use std::time::Duration;

use cordon_policy::input::{FileOp, FilesInput, NetworkInput, ToolsInput};
use cordon_policy::{
    AreaInput, Context, Fallback, LoadError, LoadOptions, Policy, PolicyConfig, PolicySet,
};
use serde_json::json;

use super::write_files;

/// Load a policy directory made of `files`, with the default config and options.
fn load(files: &[(&str, &str)]) -> Result<PolicySet, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
}

fn set_from(rego: &str) -> PolicySet {
    set_with(rego, LoadOptions::default())
}

fn set_with(rego: &str, opts: LoadOptions) -> PolicySet {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("p.rego", rego)]);
    PolicySet::load(dir.path(), &PolicyConfig::default(), &opts).unwrap()
}

fn tool(name: &str) -> AreaInput {
    AreaInput::Tools(ToolsInput {
        tool: name.into(),
        arguments: json!({}),
    })
}

fn assert_fallback(set: &PolicySet, input: &AreaInput, kind: Fallback, says: &str) {
    let d = set.decide(&Context::default(), input);
    assert!(!d.allow, "{kind:?} must deny");
    assert_eq!(d.fallback, Some(kind), "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains(says)),
        "{:?} lacks {says:?}",
        d.reasons
    );
}

#[test]
fn no_policy_loaded_denies() {
    let d = Policy::empty().decide(&Context::default(), &tool("exec"));
    assert!(!d.allow);
    assert_eq!(d.fallback, Some(Fallback::NoPolicy));
    assert_eq!(d.reasons, ["denied: no policy is loaded"]);
}

#[test]
fn missing_package_denies() {
    let set = set_from("package cordon.tools\ndecision := {\"allow\": true}\n");
    let input = AreaInput::Network(NetworkInput::connect("github.com", 443, vec![]));
    assert_fallback(
        &set,
        &input,
        Fallback::MissingPackage,
        "no data.cordon.network.decision rule",
    );
    // The package that exists still answers.
    assert!(set.decide(&Context::default(), &tool("x")).allow);
}

#[test]
fn package_without_decision_rule_denies() {
    let set = set_from("package cordon.tools\nallow := true\n");
    assert_fallback(
        &set,
        &tool("x"),
        Fallback::MissingPackage,
        "no data.cordon.tools.decision",
    );
}

#[test]
fn undefined_result_denies() {
    let set = set_from(
        "package cordon.tools\ndecision := {\"allow\": true} if input.tool == \"never\"\n",
    );
    assert_fallback(&set, &tool("exec"), Fallback::Undefined, "undefined");
}

#[test]
fn wrong_shape_denies() {
    for body in [
        "decision := true",
        "decision := {\"allow\": \"true\"}",
        "decision := {\"reasons\": []}",
        "decision := {\"allow\": true, \"reasons\": \"ok\"}",
    ] {
        let set = set_from(&format!("package cordon.tools\n{body}\n"));
        assert_fallback(&set, &tool("exec"), Fallback::WrongShape, "wrong shape");
    }
}

#[test]
fn evaluation_error_denies() {
    // Two complete definitions that disagree: an evaluation error in Rego.
    let conflict = "package cordon.tools\ndecision := {\"allow\": true}\ndecision := {\"allow\": false} if input.tool == \"exec\"\n";
    assert_fallback(
        &set_from(conflict),
        &tool("exec"),
        Fallback::EvalError,
        "evaluation failed",
    );
    // A builtin error is an error (strict mode), not a quietly undefined expression.
    let builtin = "package cordon.tools\ndecision := {\"allow\": to_number(input.tool) > 0}\n";
    assert_fallback(
        &set_from(builtin),
        &tool("exec"),
        Fallback::EvalError,
        "evaluation failed",
    );
    let cidr = "package cordon.tools\nin_range if net.cidr_contains(\"10.0.0.0/8\", input.tool)\ndecision := {\"allow\": true} if not in_range\n";
    assert_fallback(
        &set_from(cidr),
        &tool("not-an-ip"),
        Fallback::EvalError,
        "evaluation failed",
    );
}

#[test]
fn evaluation_past_its_limit_denies() {
    // 25 million iterations with no output: seconds of work, bounded memory.
    let slow = "package cordon.tools\nspin if {\n some a in numbers.range(1, 5000)\n some b in numbers.range(1, 5000)\n a * b == -1\n}\ndecision := {\"allow\": true} if not spin\n";
    let opts = LoadOptions {
        eval_timeout: Duration::from_millis(20),
        ..LoadOptions::default()
    };
    assert_fallback(
        &set_with(slow, opts),
        &tool("exec"),
        Fallback::Timeout,
        "exceeded its limit",
    );
}

#[test]
fn bad_input_denies() {
    let set = set_from("package cordon.network\ndecision := {\"allow\": true}\n");
    let input = AreaInput::Network(NetworkInput::connect("", 443, vec![]));
    assert_fallback(&set, &input, Fallback::BadInput, "non-empty host");
    let set = set_from("package cordon.files\ndecision := {\"allow\": true}\n");
    let input = AreaInput::Files(FilesInput::new(FileOp::Rename, "a"));
    assert_fallback(&set, &input, Fallback::BadInput, "rename needs");
}

#[test]
fn missing_policy_dir_is_a_load_error_and_nothing_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err =
        PolicySet::load(&missing, &PolicyConfig::default(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = PolicySet::load(
        empty.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Empty(_)), "{err}");
}

#[test]
fn broken_sources_are_load_errors() {
    let err = load(&[("p.rego", "package cordon.tools\ndecision := {")]).unwrap_err();
    assert!(matches!(err, LoadError::Compile(_)), "{err}");

    let err = load(&[
        ("p.rego", "package x\ny := 1\n"),
        ("data.json", "{not json"),
    ])
    .unwrap_err();
    assert!(matches!(err, LoadError::Data { .. }), "{err}");

    let err = load(&[
        ("p.rego", "package x\ny := 1\n"),
        ("a/data.json", "{\"k\": 1}"),
        ("data.yaml", "a:\n  k: 2\n"),
    ])
    .unwrap_err();
    assert!(matches!(err, LoadError::DataConflict { .. }), "{err}");
}

#[test]
fn config_data_is_reserved() {
    let err = load(&[
        ("p.rego", "package x\ny := 1\n"),
        ("cordon/config/data.json", "{\"network\": {}}"),
    ])
    .unwrap_err();
    assert!(
        err.to_string().contains("data.cordon.config is reserved"),
        "{err}"
    );
}

#[test]
fn data_files_are_mounted_by_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "p.rego",
                "package cordon.tools\ndecision := {\"allow\": input.tool in data.team.allowed}\n",
            ),
            ("team/data.yaml", "allowed: [exec, read_file]\n"),
        ],
    );
    let set = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(set.decide(&Context::default(), &tool("exec")).allow);
    assert!(!set.decide(&Context::default(), &tool("git_push")).allow);
}

#[test]
fn failing_tests_refuse_the_set() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "p.rego",
            "package cordon.tools\ndecision := {\"allow\": true}\n\ntest_deliberately_wrong if decision.allow == false\n",
        )],
    );
    let err = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("data.cordon.tools.test_deliberately_wrong"),
        "{err}"
    );
}

#[test]
fn policy_id_changes_with_content_and_config() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "p.rego",
            "package cordon.tools\ndecision := {\"allow\": true}\n",
        )],
    );
    let a = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    let b = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(a.id(), b.id());
    assert!(a.id().starts_with("rego:"));
    let mut config = PolicyConfig::default();
    config.tools.deny = vec!["exec".into()];
    let c = PolicySet::load(dir.path(), &config, &LoadOptions::default()).unwrap();
    assert_ne!(a.id(), c.id());
}

#[test]
fn errors_are_one_line_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("p.rego", "package cordon.tools\ndecision := {\n")],
    );
    let err = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg:?}");
    assert!(msg.starts_with("policy does not compile: p.rego:"), "{msg}");
    let builtin = "package cordon.tools\ndecision := {\"allow\": to_number(input.tool) > 0}\n";
    let d = set_from(builtin).decide(&Context::default(), &tool("exec"));
    assert!(
        d.reasons.iter().all(|r| !r.contains('\n')),
        "{:?}",
        d.reasons
    );
    assert!(d.reasons[0].contains("p.rego:2:"), "{:?}", d.reasons);
}

#[test]
fn fallbacks_are_not_cached_but_answers_are() {
    let slow = "package cordon.tools\nspin if {\n some a in numbers.range(1, 5000)\n some b in numbers.range(1, 5000)\n a * b == -1\n}\ndecision := {\"allow\": true} if not spin\n";
    let opts = LoadOptions {
        eval_timeout: Duration::from_millis(20),
        ..LoadOptions::default()
    };
    let set = set_with(slow, opts);
    assert_eq!(
        set.decide(&Context::default(), &tool("exec")).fallback,
        Some(Fallback::Timeout)
    );
    assert_eq!(
        set.cached_decisions(),
        0,
        "a timeout may be load, not the input: never cached"
    );

    let set =
        set_from("package cordon.tools\ndecision := {\"allow\": input.tool == \"read_file\"}\n");
    set.decide(&Context::default(), &tool("read_file"));
    set.decide(&Context::default(), &tool("read_file"));
    set.decide(&Context::default(), &tool("exec"));
    assert_eq!(set.cached_decisions(), 2);
    let off = set_with(
        "package cordon.tools\ndecision := {\"allow\": true}\n",
        LoadOptions {
            decision_cache: 0,
            ..LoadOptions::default()
        },
    );
    off.decide(&Context::default(), &tool("x"));
    assert_eq!(off.cached_decisions(), 0);
}

#[test]
fn cached_decisions_are_answered_without_evaluation_and_only_those() {
    let set = set_from(
        "package cordon.tools\ndecision := {\"allow\": input.tool == \"read_file\", \"reasons\": [\"r\"]}\n",
    );
    let ctx = Context::default();
    assert!(
        set.decide_cached(&ctx, &tool("read_file")).is_none(),
        "not evaluated yet"
    );
    let evaluated = set.decide(&ctx, &tool("read_file"));
    let cached = set.decide_cached(&ctx, &tool("read_file")).unwrap();
    assert_eq!(cached, evaluated);
    assert!(cached.allow);
    assert!(set.decide_cached(&ctx, &tool("exec")).is_none());
    // A timeout is not remembered, so it is never answered from the cache.
    let slow = "package cordon.tools\nspin if {\n some a in numbers.range(1, 5000)\n some b in numbers.range(1, 5000)\n a * b == -1\n}\ndecision := {\"allow\": true} if not spin\n";
    let slow = set_with(
        slow,
        LoadOptions {
            eval_timeout: Duration::from_millis(20),
            ..LoadOptions::default()
        },
    );
    slow.decide(&ctx, &tool("exec"));
    assert!(slow.decide_cached(&ctx, &tool("exec")).is_none());
}
