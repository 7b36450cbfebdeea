//! Resource exhaustion, each under an outer bound the test owns (a cgroup with pids.max and a
//! memory limit, and the run's own hard timeout), so a broken sandbox fails the test instead of
//! taking the machine down.

use std::time::Duration;

use cordon_sandbox::{Command, Exit, Sandbox};

use super::harness::*;

fn bounded(ws: &Ws, edit: impl FnOnce(&mut cordon_sandbox::SandboxConfig)) -> Sandbox {
    let mut c = ws.config();
    c.limits.timeout = Duration::from_secs(5);
    edit(&mut c);
    Sandbox::new(c).unwrap()
}

fn limit<'a>(r: &'a Ran, name: &str) -> &'a cordon_sandbox::AppliedLimit {
    r.outcome.limits.iter().find(|l| l.name == name).unwrap()
}

#[test]
fn blocks_fork_bomb() {
    let _outer = OuterBound::new(400, 1 << 30);
    let ws = Ws::new();
    let sb = bounded(&ws, |c| {
        c.limits.pids = 64;
        c.limits.timeout = Duration::from_secs(3);
    });
    let (r, event) = audited(&sb, "bomb() { bomb | bomb & }; bomb; sleep 10");
    assert!(r.outcome.timed_out || !r.outcome.exit.success());
    let pids = limit(&r, "pids");
    assert!(pids.hit, "{:?}", r.outcome.limits);
    assert_ne!(pids.mechanism, cordon_sandbox::Mechanism::None);
    assert!(
        event["detail"]["limits_hit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "pids"),
        "{event}"
    );
    // Everything is gone afterwards: the host can still start processes.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn blocks_memory_bomb() {
    let _outer = OuterBound::new(200, 2 << 30);
    let ws = Ws::new();
    let sb = bounded(&ws, |c| c.limits.memory_bytes = 128 << 20);
    let (r, event) = audited(
        &sb,
        "python3 -c 'x = []\nwhile True: x.append(bytearray(16 << 20))'; echo exit=$?",
    );
    assert!(!r.stdout.contains("exit=0"), "{}", r.stdout);
    assert!(limit(&r, "memory").hit, "{:?}", r.outcome.limits);
    assert!(
        event["detail"]["limits_hit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "memory")
    );
}

#[test]
fn blocks_disk_fill() {
    let _outer = OuterBound::new(200, 1 << 30);
    let ws = Ws::new();
    let sb = bounded(&ws, |c| {
        c.limits.file_size_bytes = 8 << 20;
        c.limits.tmp_bytes = 16 << 20;
    });
    // One huge file in the workspace stops at the file-size limit (SIGXFSZ).
    let cmd = Command::new(["/bin/sh", "-c", "exec head -c 100000000 /dev/zero > big"]);
    let r = run_cmd(&sb, &cmd);
    assert_eq!(r.outcome.exit, Exit::Signal(libc_sigxfsz()));
    assert!(limit(&r, "file_size").hit);
    assert!(std::fs::metadata(ws.join("big")).unwrap().len() <= 8 << 20);
    // Filling /tmp stops at its size.
    let (r, _) = audited(
        &sb,
        "i=0; while [ $i -lt 10 ]; do head -c 4000000 /dev/zero > /tmp/f$i || break; i=$((i+1)); done; \
         du -sk /tmp | cut -f1",
    );
    let kib: u64 = r.stdout.trim().parse().unwrap();
    assert!(kib <= 16 * 1024, "{kib} KiB in /tmp");
}

fn libc_sigxfsz() -> i32 {
    25
}

#[test]
fn blocks_a_background_process_outliving_its_command() {
    let _outer = OuterBound::new(200, 1 << 30);
    let ws = Ws::new();
    let sb = bounded(&ws, |_| {});
    let marker = format!("31.{}", std::process::id());
    let (r, _) = audited(
        &sb,
        &format!(
            "sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & setsid sleep {marker} & \
             (sleep {marker} &) ; echo started"
        ),
    );
    r.ok();
    assert!(
        r.outcome.duration < Duration::from_secs(3),
        "{:?}",
        r.outcome.duration
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !host_process_with(&format!("sleep {marker}")),
        "a background sleep survived"
    );
}

#[test]
fn kills_the_whole_tree_at_the_timeout() {
    let _outer = OuterBound::new(200, 1 << 30);
    let ws = Ws::new();
    let sb = bounded(&ws, |c| c.limits.timeout = Duration::from_millis(500));
    let marker = format!("32.{}", std::process::id());
    let (r, event) = audited(&sb, &format!("sleep {marker} & sleep {marker}; echo never"));
    assert!(r.outcome.timed_out);
    assert_eq!(r.outcome.exit, Exit::Signal(9));
    assert!(!r.stdout.contains("never"));
    assert!(r.outcome.duration < Duration::from_secs(3));
    assert_eq!(event["outcome"], "timeout");
    assert!(!host_process_with(&format!("sleep {marker}")));
}

#[test]
fn caps_output_with_a_marker() {
    let ws = Ws::new();
    let sb = bounded(&ws, |c| c.limits.output_bytes = 1000);
    let (r, event) = audited(
        &sb,
        "head -c 100000 /dev/zero | tr '\\0' a; echo; echo tail >&2",
    );
    r.ok();
    assert!(r.outcome.truncated);
    assert_eq!(r.outcome.output_bytes, 100_006);
    assert!(r.stdout.starts_with(&"a".repeat(1000)));
    assert!(
        r.stdout
            .contains("[cordon: output truncated after 1000 bytes]")
    );
    assert!(!r.stderr.contains("tail"));
    assert!(
        event["detail"]["limits_hit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "output")
    );
}
