//! `cordon policy test` and `cordon policy eval`.

use serde_json::{Value, json};

use super::{Env, copy_dir, default_policies};

const CONFIG: &str = r#"
[network]
allow = ["github.com", "*.githubusercontent.com", "pypi.org:443"]
"#;

#[test]
fn policy_test_passes_on_the_default_policies() {
    let env = Env::new();
    let run = env.run(&["policy", "test", default_policies().to_str().unwrap()]);
    run.expect(0);
    let out = run.stdout();
    let summary = out.lines().last().unwrap();
    assert!(summary.starts_with("PASS: "), "{out}");
    let (passed, total) = summary["PASS: ".len()..].split_once('/').unwrap();
    assert_eq!(passed, total);
    assert!(total.parse::<usize>().unwrap() >= 50, "{summary}");
}

#[test]
fn policy_test_fails_on_a_deliberately_failing_test() {
    let env = Env::new();
    let dir = env.path("policies");
    copy_dir(&default_policies(), &dir);
    env.write(
        "policies/broken_test.rego",
        "package cordon.broken_test\n\nimport rego.v1\n\nimport data.cordon.network\n\n\
         test_allows_anything if network.decision.allow with input as {\"phase\": \"connect\", \"host\": \"evil.example\", \"port\": 443, \"ips\": []}\n",
    );
    let run = env.run(&["policy", "test", dir.to_str().unwrap()]);
    run.expect(1);
    let out = run.stdout();
    assert!(
        out.contains("data.cordon.broken_test.test_allows_anything: FAIL"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == "FAIL: 1/".to_owned() + l.split('/').nth(1).unwrap_or("")),
        "{out}"
    );
}

#[test]
fn policy_test_json_output() {
    let env = Env::new();
    let run = env.run(&[
        "policy",
        "test",
        default_policies().to_str().unwrap(),
        "--format",
        "json",
    ]);
    run.expect(0);
    let cases = run.json()["cases"].as_array().unwrap().len();
    assert!(cases >= 50);
}

#[test]
fn policy_test_on_a_broken_dir_is_an_error() {
    let env = Env::new();
    env.write("p/x.rego", "package cordon.x\nallow if {\n");
    let run = env.run(&["policy", "test", "p"]);
    run.fails(2, "cannot load policies from p");
}

#[test]
fn eval_denies_internal_addresses_even_for_an_allowlisted_host() {
    let env = Env::new();
    env.write("cordon.toml", CONFIG);
    for ip in [
        "169.254.169.254",
        "10.0.0.1",
        "100.64.0.1",
        "::ffff:127.0.0.1",
    ] {
        let run = env.eval(
            "network",
            &json!({"phase": "connect", "host": "github.com", "port": 443, "ips": [ip]}),
        );
        run.expect(1);
        let d = run.json();
        assert_eq!(d["allow"], false, "{ip}");
        let reasons = d["reasons"].to_string();
        assert!(
            reasons.contains(ip) && reasons.contains("always denied"),
            "{ip}: {reasons}"
        );
    }
}

#[test]
fn eval_allows_listed_and_denies_unlisted_hosts() {
    let env = Env::new();
    env.write("cordon.toml", CONFIG);
    let run = env.eval(
        "network",
        &json!({"phase": "connect", "host": "github.com", "port": 443, "ips": ["140.82.112.3"]}),
    );
    run.expect(0);
    assert_eq!(run.json()["allow"], true);
    let run = env.eval(
        "network",
        &json!({"phase": "connect", "host": "evil.example", "port": 443, "ips": ["93.184.216.34"]}),
    );
    run.expect(1);
    assert!(
        run.json()["reasons"]
            .to_string()
            .contains("not in the network allowlist")
    );
}

#[test]
fn eval_denies_a_nested_workflow_write() {
    let env = Env::new();
    env.write("cordon.toml", CONFIG);
    let run = env.eval(
        "files",
        &json!({"operation": "write", "path": "sub/repo/.github/workflows/x.yml"}),
    );
    run.expect(1);
    assert!(run.json()["reasons"].to_string().contains("protected file"));
}

#[test]
fn eval_writes_one_audit_record_per_decision() {
    let env = Env::new();
    env.write("cordon.toml", CONFIG);
    env.eval(
        "network",
        &json!({"phase": "dns", "host": "github.com", "port": 443}),
    )
    .expect(0);
    env.eval("network", &json!({"phase": "dns", "host": "evil.example", "port": 443, "actor": "agent-7", "sandbox": "ws1"})).expect(1);
    let text = std::fs::read_to_string(env.log()).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["kind"], "decision");
    assert_eq!(records[0]["target"], "network github.com:443");
    assert_eq!(records[0]["decision"]["allow"], true);
    assert_eq!(records[1]["decision"]["allow"], false);
    assert_eq!(records[1]["actor"], "agent-7");
    assert_eq!(records[1]["sandbox"], "ws1");
    assert!(
        records[1]["decision"]["policy"]
            .as_str()
            .unwrap()
            .starts_with("rego:")
    );
    env.run(&["audit", "verify", env.log().to_str().unwrap()])
        .expect(0);
}

#[test]
fn eval_reads_stdin() {
    let env = Env::new();
    let run = env.run_stdin(
        &["policy", "eval", "--area", "tools", "--input", "-"],
        r#"{"tool": "read_file", "arguments": {}}"#,
    );
    run.expect(0);
}

#[test]
fn eval_bad_input_is_a_clear_error_and_no_decision() {
    let env = Env::new();
    for (input, says) in [
        ("{not json", "not valid JSON"),
        (
            r#"{"phase": "connect", "host": "a", "port": 1, "ipz": []}"#,
            "unknown key \"ipz\"",
        ),
        (
            r#"{"phase": "connect", "host": "a", "port": 99999}"#,
            "network input shape",
        ),
        (
            r#"{"phase": "connect", "host": "a", "port": 1, "ips": ["1.2.3"]}"#,
            "network input shape",
        ),
        ("[]", "must be a JSON object"),
    ] {
        let file = env.write("bad.json", input);
        let run = env.run(&[
            "policy",
            "eval",
            "--area",
            "network",
            "--input",
            file.to_str().unwrap(),
        ]);
        run.expect(2);
        assert!(run.stderr().contains(says), "{input}: {}", run.stderr());
        assert!(run.stdout().is_empty());
    }
    assert!(!env.log().exists(), "no decision, no record");
    let run = env.run(&[
        "policy",
        "eval",
        "--area",
        "network",
        "--input",
        "missing.json",
    ]);
    run.expect(2);
    assert!(run.stderr().contains("cannot read input missing.json"));
    let run = env.run(&["policy", "eval", "--area", "dns", "--input", "-"]);
    run.expect(2);
}

#[test]
fn eval_with_a_missing_policy_dir_is_an_error() {
    let env = Env::new();
    let file = env.write("in.json", r#"{"tool": "x"}"#);
    let run = env.run(&[
        "policy",
        "eval",
        "--area",
        "tools",
        "--input",
        file.to_str().unwrap(),
        "--policies",
        "nope",
    ]);
    run.fails(2, "cannot load policies from nope");
}

#[test]
fn config_errors_are_clear() {
    let env = Env::new();
    let file = env.write("in.json", r#"{"tool": "x"}"#);
    for (config, says) in [
        ("[network]\nalow = []\n", "unknown field `alow`"),
        ("[network]\nallow = [\"*\"]\n", "invalid host pattern \"*\""),
        (
            "[network]\npresets = [\"everything\"]\n",
            "unknown network preset",
        ),
        (
            "[audit]\ndurability = \"maybe\"\n",
            "invalid [audit] durability",
        ),
        ("[network\n", "invalid config"),
    ] {
        env.write("cordon.toml", config);
        let run = env.run(&[
            "policy",
            "eval",
            "--area",
            "tools",
            "--input",
            file.to_str().unwrap(),
        ]);
        run.expect(2);
        assert!(run.stderr().contains(says), "{config}: {}", run.stderr());
    }
}

#[test]
fn config_from_environment_variable() {
    let env = Env::new();
    env.write("elsewhere.toml", "[tools]\ndeny = [\"exec\"]\n");
    let file = env.write("in.json", r#"{"tool": "exec"}"#);
    let run = env
        .command(&[
            "policy",
            "eval",
            "--area",
            "tools",
            "--input",
            file.to_str().unwrap(),
        ])
        .env("CORDON_CONFIG", env.path("elsewhere.toml"))
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn eval_rule_prints_any_value() {
    let env = Env::new();
    let run = env.run_stdin(
        &[
            "policy",
            "eval",
            "--rule",
            "data.cordon.files.default_protected",
            "--input",
            "-",
        ],
        "{}",
    );
    run.expect(0);
    assert!(
        run.json()
            .as_array()
            .unwrap()
            .contains(&json!(".github/workflows/**"))
    );
    let run = env.run_stdin(
        &[
            "policy",
            "eval",
            "--rule",
            "data.cordon.network.allow",
            "--input",
            "-",
        ],
        "{}",
    );
    run.expect(0);
    assert_eq!(run.json(), json!(false));
}

#[cfg(feature = "opa-wasm")]
#[test]
fn eval_runs_an_opa_wasm_bundle() {
    let env = Env::new();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/opa-wasm");
    std::fs::create_dir_all(env.path("bundle")).unwrap();
    std::fs::copy(
        fixtures.join("decision.wasm"),
        env.path("bundle/policy.wasm"),
    )
    .unwrap();
    std::fs::copy(fixtures.join("data.json"), env.path("bundle/data.json")).unwrap();
    let run = eval_bundle(&env, r#"{"host": "evil.example"}"#);
    run.expect(0);
    assert_eq!(
        run.json(),
        json!({"allow": false, "reasons": ["host evil.example not in allowlist"]})
    );
}

#[test]
fn doctor_reports_each_feature() {
    let env = Env::new();
    let run = env.run(&["doctor"]);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    let out = run.stdout();
    for feature in [
        "user namespace",
        "network namespace",
        "landlock",
        "seccomp",
        "cgroups",
        "sandboxed run",
        "policies",
        "audit log",
    ] {
        assert!(out.contains(feature), "{feature} missing:\n{out}");
    }
    assert!(out.contains("<embedded defaults>: rego:"), "{out}");
}

#[cfg(not(feature = "opa-wasm"))]
#[test]
fn wasm_bundle_without_the_feature_is_a_clear_error() {
    let env = Env::new();
    env.write("bundle/policy.wasm", "\0asm");
    let run = eval_bundle(&env, "{}");
    run.fails(2, "built without the opa-wasm feature");
}

#[test]
fn watch_reloads_refuses_broken_edits_and_audits_each_attempt() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let good = "package cordon.tools\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n";
    let good2 = "package cordon.tools\n\nimport rego.v1\n\ndecision := {\"allow\": input.tool != \"exec\"}\n\ntest_exec_denied if not decision.allow with input as {\"tool\": \"exec\"}\n";
    env.write("pol/tools.rego", good);
    let mut child = env
        .command(&["policy", "watch", "pol"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Lines arrive through a thread so that every wait has a deadline: a missed reload fails
    // the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("cordon policy watch printed nothing within 30 s")
    };
    let first = next();
    assert!(first.starts_with("applied rego:"), "{first}");
    let first_id = first.trim_start_matches("applied ").to_owned();

    env.write("pol/tools.rego", "package cordon.tools\ndecision := {\n");
    let refused = next();
    assert!(
        refused.starts_with("refused: policy does not compile"),
        "{refused}"
    );
    assert!(
        refused.trim().ends_with(&format!("keeping {first_id}")),
        "{refused}"
    );

    env.write("pol/tools.rego", good2);
    let applied = next();
    assert!(
        applied.starts_with("applied rego:") && !applied.contains(&first_id),
        "{applied}"
    );
    child.kill().unwrap();
    let _ = child.wait();

    let records: Vec<Value> = std::fs::read_to_string(env.log())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        records
            .iter()
            .filter(|r| r["kind"] == "policy_reload")
            .count(),
        3
    );
    assert_eq!(outcomes[0], "applied");
    assert!(
        outcomes[1].starts_with("refused: policy does not compile"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], "applied");
    assert_eq!(
        records[1]["detail"]["policy"],
        Value::String(first_id.clone())
    );
    assert_eq!(records[2]["detail"]["previous"], Value::String(first_id));
    env.run(&["audit", "verify"]).expect(0);
}

#[test]
fn watch_needs_a_directory() {
    let env = Env::new();
    let run = env.run(&["policy", "watch"]);
    run.fails(2, "nothing to watch");
}

/// Evaluate the `eval` entrypoint of the Wasm bundle in `bundle/` on `input`.
fn eval_bundle(env: &Env, input: &str) -> super::Run {
    env.run_stdin(
        &[
            "policy",
            "eval",
            "--rule",
            "eval",
            "--input",
            "-",
            "--policies",
            "bundle",
        ],
        input,
    )
}
