//! `cordon audit verify|tail|query`, and several processes writing one log.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Env;

fn decide(env: &Env, tool: &str) -> i32 {
    env.eval("tools", &serde_json::json!({ "tool": tool }))
        .code()
}

fn setup(env: &Env) {
    env.write("cordon.toml", "[tools]\ndeny = [\"git_push\"]\n");
    for tool in ["read_file", "git_push", "exec", "git_push", "write_file"] {
        decide(env, tool);
    }
}

#[test]
fn verify_intact_and_tampered() {
    let env = Env::new();
    setup(&env);
    let log = env.log();
    let run = env.run(&["audit", "verify", log.to_str().unwrap()]);
    run.expect(0);
    assert!(
        run.stdout().starts_with("OK: 5 records (seq 0..=4)"),
        "{}",
        run.stdout()
    );

    let text = std::fs::read_to_string(&log).unwrap();
    let edited = text.replacen("\"allow\":false", "\"allow\":true", 1);
    std::fs::write(&log, edited).unwrap();
    let run = env.run(&["audit", "verify", log.to_str().unwrap()]);
    run.expect(1);
    assert!(
        run.stdout().contains("TAMPERED seq 1: seq 1 was altered"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("FAILED"), "{}", run.stdout());

    let run = env.run(&["audit", "verify", log.to_str().unwrap(), "--format", "json"]);
    run.expect(1);
    assert_eq!(run.json()["problems"][0]["kind"], "edited");
}

#[test]
fn verify_uses_the_configured_log_by_default() {
    let env = Env::new();
    setup(&env);
    env.run(&["audit", "verify"]).expect(0);
    let run = env.run(&["audit", "verify", "no-such.jsonl"]);
    run.fails(2, "no-such.jsonl");
}

#[test]
fn query_filters_by_kind_denied_and_time() {
    let env = Env::new();
    setup(&env);
    let run = env.run(&["audit", "query", "--kind", "decision", "--denied"]);
    run.expect(0);
    let lines: Vec<Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|r| r["target"] == "tools git_push"));
    env.run(&["audit", "query", "--kind", "egress"]).expect(1);
    env.run(&["audit", "query", "--since", "1h"]).expect(0);
    env.run(&["audit", "query", "--since", "2999-01-01T00:00:00Z"])
        .expect(1);
    let run = env.run(&["audit", "query", "--since", "yesterday"]);
    run.expect(2);
    assert!(run.stderr().contains("invalid --since"));
    let run = env.run(&["audit", "query", "--kind", "nope"]);
    run.expect(2);
}

#[test]
fn tail_prints_the_last_records_and_follows_new_ones() {
    let env = Env::new();
    setup(&env);
    let run = env.run(&["audit", "tail", "-n", "2"]);
    run.expect(0);
    let seqs: Vec<u64> = run
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4]);

    let mut follower = env
        .command(&["audit", "tail", "-n", "0", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    // A record written after the follower started must reach it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        decide(&env, "exec");
        let mut line = String::new();
        // The follower polls every 200 ms; the read blocks until a line arrives.
        if reader.read_line(&mut line).unwrap() > 0 {
            seen = Some(serde_json::from_str::<Value>(&line).unwrap());
        }
    }
    follower.kill().unwrap();
    let _ = follower.wait();
    let rec = seen.expect("follower printed the new record");
    assert!(rec["seq"].as_u64().unwrap() >= 5);
    assert_eq!(rec["target"], "tools exec");
}

#[test]
fn concurrent_processes_share_one_chain() {
    let env = Env::new();
    env.write("cordon.toml", "");
    let file = env.write("in.json", r#"{"tool": "exec"}"#);
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = env.command(&[
                "--config",
                "cordon.toml",
                "policy",
                "eval",
                "--area",
                "tools",
                "--input",
                file.to_str().unwrap(),
            ]);
            cmd.stdout(Stdio::null());
            cmd
        })
        .collect();
    let mut handles = Vec::new();
    // Four threads, each starting five cordon processes one after another: up to four
    // processes append to the log at any moment.
    for mut cmd in children {
        handles.push(std::thread::spawn(move || {
            for _ in 0..5 {
                assert!(cmd.status().unwrap().success());
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let run = env.run(&["audit", "verify"]);
    run.expect(0);
    assert!(
        run.stdout().starts_with("OK: 20 records (seq 0..=19)"),
        "{}",
        run.stdout()
    );
}
