//! Hot reload: a broken edit keeps the last good set, a good edit applies, and concurrent
//! decisions never see a mix of two sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use cordon_policy::input::ToolsInput;
use cordon_policy::reload::reload_now;
use cordon_policy::{AreaInput, Context, LoadOptions, Policy, PolicyConfig, PolicySet, Reloader};
use serde_json::json;

use super::write_files;

const ALLOW: &str = "package cordon.tools\ndecision := {\"allow\": true, \"reasons\": [\"v1\"]}\n";
const DENY: &str = "package cordon.tools\ndecision := {\"allow\": false, \"reasons\": [\"v2\"]}\n\ntest_v2_denies if not decision.allow\n";
const BROKEN: &str = "package cordon.tools\ndecision := {\"allow\": \n";
const FAILS_ITS_TEST: &str = "package cordon.tools\ndecision := {\"allow\": true, \"reasons\": [\"v3\"]}\n\ntest_must_deny if not decision.allow\n";

fn exec() -> AreaInput {
    AreaInput::Tools(ToolsInput {
        tool: "exec".into(),
        arguments: json!({}),
    })
}

fn reasons(policy: &Policy) -> Vec<String> {
    policy.decide(&Context::default(), &exec()).reasons
}

#[test]
fn watcher_keeps_last_good_set_and_applies_good_edits() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tools.rego", ALLOW)]);
    let opts = LoadOptions::default();
    let set = PolicySet::load(dir.path(), &PolicyConfig::default(), &opts).unwrap();
    let first_id = set.id().to_owned();
    let policy = Arc::new(Policy::new(set));
    let (tx, rx) = mpsc::channel();
    let _reloader = Reloader::watch(
        policy.clone(),
        dir.path().to_owned(),
        PolicyConfig::default(),
        opts,
        move |ev| {
            let _ = tx.send(ev);
        },
    )
    .unwrap();
    let next = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a reload event")
    };

    write_files(dir.path(), &[("tools.rego", BROKEN)]);
    let ev = next();
    assert!(!ev.applied);
    assert!(
        ev.error.as_deref().unwrap().contains("does not compile"),
        "{ev:?}"
    );
    assert_eq!(ev.policy.as_deref(), Some(first_id.as_str()));
    assert_eq!(reasons(&policy), ["v1"]);

    write_files(dir.path(), &[("tools.rego", FAILS_ITS_TEST)]);
    let ev = next();
    assert!(!ev.applied);
    assert!(
        ev.error.as_deref().unwrap().contains("test_must_deny"),
        "{ev:?}"
    );
    assert_eq!(reasons(&policy), ["v1"]);

    write_files(dir.path(), &[("tools.rego", DENY)]);
    let ev = next();
    assert!(ev.applied, "{ev:?}");
    assert_eq!(ev.previous.as_deref(), Some(first_id.as_str()));
    assert_ne!(ev.policy.as_deref(), Some(first_id.as_str()));
    assert_eq!(reasons(&policy), ["v2"]);
    assert!(!policy.decide(&Context::default(), &exec()).allow);
}

#[test]
fn concurrent_decisions_never_see_a_mixed_set() {
    // Rules from one set with data from the other would answer (true, "B") or (false, "A").
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let rego =
        "package cordon.tools\ndecision := {\"allow\": data.flag, \"reasons\": [data.name]}\n";
    write_files(
        a.path(),
        &[
            ("p.rego", rego),
            ("data.json", "{\"flag\": true, \"name\": \"A\"}"),
        ],
    );
    write_files(
        b.path(),
        &[
            ("p.rego", rego),
            ("data.json", "{\"flag\": false, \"name\": \"B\"}"),
        ],
    );
    let config = PolicyConfig::default();
    let opts = LoadOptions::default();
    let policy = Arc::new(Policy::new(
        PolicySet::load(a.path(), &config, &opts).unwrap(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let policy = policy.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let d = policy.decide(&Context::default(), &exec());
                    match (d.allow, d.reasons.as_slice()) {
                        (true, [r]) if r == "A" => seen[0] += 1,
                        (false, [r]) if r == "B" => seen[1] += 1,
                        other => panic!("mixed or failed decision: {other:?} {:?}", d.fallback),
                    }
                }
                seen
            })
        })
        .collect();
    for i in 0..40 {
        let dir = if i % 2 == 0 { b.path() } else { a.path() };
        let ev = reload_now(&policy, dir, &config, &opts);
        assert!(ev.applied, "{ev:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = [0usize; 2];
    for r in readers {
        let seen = r.join().unwrap();
        total[0] += seen[0];
        total[1] += seen[1];
    }
    assert!(total[0] + total[1] > 0);
}

#[test]
fn reloading_the_same_content_is_not_an_event() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tools.rego", ALLOW)]);
    let config = PolicyConfig::default();
    let opts = LoadOptions::default();
    let policy = Policy::new(PolicySet::load(dir.path(), &config, &opts).unwrap());
    let ev = reload_now(&policy, dir.path(), &config, &opts);
    assert!(!ev.applied);
    assert_eq!(ev.error, None);
    assert_eq!(ev.policy, ev.previous);
}
