//! `cordon scan` on real files, directories and stdin.

use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use serde_json::Value;

use super::Env;

const TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const KEY_ID: &str = "AKIAPYCDYBK377OXTZQ6";

fn tree(env: &Env) {
    env.write(
        "repo/src/main.rs",
        "fn main() {\n    let t = \"unused\";\n}\n",
    );
    env.write("repo/.env", &format!("# local\nGITHUB_TOKEN={TOKEN}\n"));
    env.write("repo/deploy/aws.txt", &format!("id={KEY_ID}\n"));
    env.write("repo/.gitignore", "ignored/\n");
    env.write("repo/ignored/secret.txt", &format!("{TOKEN}\n"));
    let mut binary = vec![0u8, 1, 2, 3];
    binary.extend_from_slice(TOKEN.as_bytes());
    std::fs::write(env.path("repo/blob.bin"), binary).unwrap();
}

#[test]
fn finds_secrets_in_a_directory_respecting_gitignore_and_skipping_binaries() {
    let env = Env::new();
    tree(&env);
    let run = env.run(&["scan", "repo"]);
    run.expect(1);
    let out = run.stdout();
    assert!(out.contains("repo/.env:2: github-pat"), "{out}");
    assert!(
        out.contains("repo/deploy/aws.txt:1: aws-access-key-id"),
        "{out}"
    );
    assert!(!out.contains("ignored"), "{out}");
    assert!(!out.contains("blob.bin"), "{out}");
    assert!(
        !out.contains(TOKEN) && !out.contains(KEY_ID),
        "secrets must not be printed: {out}"
    );
    assert!(run.stderr().contains("2 finding(s)"), "{}", run.stderr());
}

#[test]
fn clean_input_exits_zero() {
    let env = Env::new();
    env.write("clean/a.txt", "nothing to see\n");
    env.run(&["scan", "clean"]).expect(0);
    env.run_stdin(&["scan", "-"], "hello world\n").expect(0);
}

#[test]
fn stdin_is_scanned() {
    let env = Env::new();
    let run = env.run_stdin(&["scan", "-"], &format!("x\ny\ntoken={TOKEN}\n"));
    run.expect(1);
    assert!(
        run.stdout().starts_with("-:3: github-pat"),
        "{}",
        run.stdout()
    );
}

#[test]
fn json_output_has_locations_and_fingerprints_but_no_values() {
    let env = Env::new();
    tree(&env);
    let run = env.run(&["scan", "repo", "--format", "json"]);
    run.expect(1);
    assert!(!run.stdout().contains(TOKEN));
    let findings = run.json();
    let f = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "github-pat")
        .unwrap();
    assert_eq!(f["path"], "repo/.env");
    assert_eq!(f["line"], 2);
    assert_eq!(f["fingerprint"].as_str().unwrap().len(), 16);
    assert!(f.get("secret").is_none());
}

#[test]
fn sarif_output_is_2_1_0() {
    let env = Env::new();
    tree(&env);
    let run = env.run(&["scan", "repo", "--format", "sarif"]);
    run.expect(1);
    let sarif = run.json();
    assert_eq!(sarif["version"], "2.1.0");
    let run0 = &sarif["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "cordon");
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let r = results
        .iter()
        .find(|r| r["ruleId"] == "github-pat")
        .unwrap();
    assert_eq!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "repo/.env"
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert!(r["partialFingerprints"]["cordonSecretFingerprint/v1"].is_string());
    let rules: Vec<&Value> = run0["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(rules.iter().any(|r| r["id"] == "github-pat"));
    assert!(!run.stdout().contains(TOKEN));
}

#[test]
fn baseline_hides_known_findings_and_fingerprints_are_stable() {
    let env = Env::new();
    tree(&env);
    let first = env.run(&["scan", "repo", "--format", "json"]);
    first.expect(1);
    std::fs::write(env.path("baseline.json"), first.stdout()).unwrap();
    env.run(&["scan", "repo", "--baseline", "baseline.json"])
        .expect(0);
    // A new secret still shows.
    env.write("repo/new.txt", "npm_abcdefghijklmnopqrstuvwxyz0123456789\n");
    let run = env.run(&["scan", "repo", "--baseline", "baseline.json"]);
    run.expect(1);
    assert!(run.stdout().contains("npm-token"), "{}", run.stdout());
    assert!(!run.stdout().contains("github-pat"), "{}", run.stdout());
    // The key was made once, private.
    let key = env.path(".local/state/cordon/fingerprint.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    let bad = env.write("bad.json", "{}");
    let run = env.run(&["scan", "repo", "--baseline", bad.to_str().unwrap()]);
    run.fails(2, "is not the JSON output");
}

#[test]
fn large_files_are_skipped_by_config() {
    let env = Env::new();
    env.write("cordon.toml", "[scan]\nmax_file_mib = 1\n");
    let mut big = "a".repeat(2 * 1024 * 1024);
    big.push_str(TOKEN);
    env.write("big/file.txt", &big);
    let run = env.run(&["--config", "cordon.toml", "scan", "big"]);
    run.fails(0, "1 skipped");
}

#[test]
fn gitleaks_rule_files_and_their_errors() {
    let env = Env::new();
    env.write(
        "rules.toml",
        "[[rules]]\nid = \"acme\"\ndescription = \"ACME token\"\nregex = '''\\b(acme_[a-z0-9]{16})\\b'''\nkeywords = [\"acme_\"]\n",
    );
    env.write("src/a.txt", &format!("acme_a1b2c3d4e5f6a7b8\n{TOKEN}\n"));
    let run = env.run(&["scan", "src", "--rules", "rules.toml"]);
    run.expect(1);
    assert!(run.stdout().contains("acme"), "{}", run.stdout());
    assert!(
        !run.stdout().contains("github-pat"),
        "no useDefault: only the file's rules"
    );
    env.write("bad.toml", "[[rules]]\nid = \"x\"\nregex = '''('''\n");
    let run = env.run(&["scan", "src", "--rules", "bad.toml"]);
    run.fails(2, "rule x: regex does not compile");
}

#[test]
fn reveal_prints_the_value_in_text_only() {
    let env = Env::new();
    let run = env.run_stdin(&["scan", "-", "--reveal"], TOKEN);
    run.expect(1);
    assert!(run.stdout().contains(TOKEN));
    let run = env.run_stdin(&["scan", "-", "--reveal", "--format", "json"], TOKEN);
    assert!(!run.stdout().contains(TOKEN));
}

#[test]
fn missing_path_is_an_error() {
    let env = Env::new();
    let run = env.run(&["scan", "nope"]);
    run.fails(2, "nope does not exist");
}

#[test]
fn exact_secrets_from_the_environment() {
    let env = Env::new();
    let value = "corp-deploy-key-9f8e7d6c";
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("user:{value}"));
    env.write("out/a.txt", "nothing\n");
    env.write("out/b.txt", &format!("header: {encoded}\n"));
    let run = env
        .command(&["scan", "out", "--exact-env", "DEPLOY_KEY", "--decode"])
        .env("DEPLOY_KEY", value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("out/b.txt:1: exact-secret (the value of DEPLOY_KEY)"),
        "{stdout}"
    );
    assert!(!stdout.contains(value));
    let run = env.run(&["scan", "out", "--exact-env", "NOT_SET_ANYWHERE"]);
    run.expect(2);
    assert!(
        run.stderr()
            .contains("NOT_SET_ANYWHERE: the environment variable is not set"),
        "{}",
        run.stderr()
    );
}
