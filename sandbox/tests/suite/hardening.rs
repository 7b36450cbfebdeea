//! Process hygiene and isolation levels: environment, descriptors, session, parent death, and
//! what happens when the host lacks a feature.

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use cordon_sandbox::{Sandbox, SandboxError};

use super::harness::*;

#[test]
fn blocks_the_host_environment() {
    // SAFETY: set before any sandbox thread of this test process reads the environment.
    unsafe { std::env::set_var("AWS_SECRET_ACCESS_KEY", "host-only-value") };
    let ws = Ws::new();
    let sb = ws.sandbox();
    let (r, _) = audited(&sb, "env | sort");
    r.ok();
    assert!(!r.stdout.contains("AWS_SECRET_ACCESS_KEY") && !r.stdout.contains("host-only-value"));
    for expected in [
        "HOME=/tmp",
        "PATH=/usr/local/sbin",
        "PWD=/workspace",
        "USER=cordon",
    ] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(expected)),
            "{expected}: {}",
            r.stdout
        );
    }
}

#[test]
fn proxy_and_ca_variables_point_inside() {
    let ws = Ws::new();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        ca.path(),
        "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut config = ws.config();
    config.proxy_socket = Some(socket);
    config.ca_file = Some(ca.path().to_owned());
    let sb = Sandbox::new(config).unwrap();
    let r = sh(&sb, "env | sort; head -1 \"$SSL_CERT_FILE\"");
    r.ok();
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        assert!(
            r.stdout.contains(&format!("{v}=http://127.0.0.1:3128")),
            "{v}: {}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("NO_PROXY=localhost,127.0.0.1,::1"));
    for v in [
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "CARGO_HTTP_CAINFO",
    ] {
        assert!(
            r.stdout.contains(&format!("{v}=/run/cordon/ca.pem")),
            "{v}: {}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("-----BEGIN CERTIFICATE-----"));
    // The CA file is read-only inside.
    let r = sh(&sb, "echo x > /run/cordon/ca.pem && echo WROTE; echo done");
    assert!(!r.stdout.contains("WROTE"));
}

#[test]
fn blocks_inherited_descriptors_and_the_callers_terminal() {
    // A descriptor the caller left open without close-on-exec must not reach the command.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    // SAFETY: duplicating a descriptor this test owns to 77 or above, without
    // close-on-exec (F_DUPFD).
    let fd = unsafe { dup_inheritable(leaked.as_raw_fd(), 77) };
    assert!(fd >= 77);
    let ws = Ws::new();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; \
         (exec 3</dev/tty) 2>/dev/null && echo HAS_TTY; \
         awk '{print $6, $7}' /proc/self/stat; echo done",
    );
    r.ok();
    let fds: Vec<&str> = r
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // ls itself opens one descriptor for the directory it lists.
    assert!(
        fds.len() <= 4 && !fds.contains(&fd.to_string().as_str()),
        "{fds:?}"
    );
    assert!(!r.stdout.contains("HAS_TTY"), "{}", r.stdout);
    // No controlling terminal: tty_nr 0 in /proc/self/stat.
    let stat = r.stdout.lines().nth(1).unwrap();
    assert!(stat.ends_with(" 0"), "{stat}");
    drop(leaked);
}

unsafe fn dup_inheritable(fd: i32, min: i32) -> i32 {
    // The test crate has no libc dependency; F_DUPFD (0) duplicates without FD_CLOEXEC.
    unsafe extern "C" {
        fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    // SAFETY: a valid descriptor and command.
    unsafe { fcntl(fd, 0, min) }
}

#[test]
fn refuses_a_landlock_abi_below_the_minimum() {
    let ws = Ws::new();
    let mut config = ws.config();
    config.min_landlock_abi = 99;
    let err = Sandbox::new(config).unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::Unsupported {
                feature: "landlock",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("below the configured minimum 99")
            && text.contains("--allow-weaker landlock"),
        "{text}"
    );
}

#[test]
fn runs_at_a_reduced_level_only_when_the_operator_accepts_it() {
    let ws = Ws::new();
    let mut config = ws.config();
    config.min_landlock_abi = 99;
    config.downgrades.landlock = true;
    let sb = Sandbox::new(config).unwrap();
    let r = sh(&sb, "echo hi");
    r.ok();
    assert_eq!(r.outcome.isolation.level, "reduced");
    assert_eq!(
        r.outcome.isolation.downgrades.len(),
        1,
        "{:?}",
        r.outcome.isolation
    );
    let event = cordon_sandbox::audit_event(
        "t",
        &cordon_sandbox::Command::new(["/bin/sh"]),
        &r.outcome,
        &|s| s.to_owned(),
    );
    assert_eq!(event.detail["level"], "reduced");
}

#[test]
fn bad_requests_are_refused_with_clear_errors() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let run = |cmd: cordon_sandbox::Command| sb.run(&cmd, &mut |_, _| {}).unwrap_err().to_string();
    assert!(run(cordon_sandbox::Command::new(Vec::<String>::new())).contains("empty"));
    assert!(run(cordon_sandbox::Command::new(["true"]).cwd("../x")).contains("without '..'"));
    assert!(run(cordon_sandbox::Command::new(["true"]).cwd("/etc")).contains("relative"));
    assert!(run(cordon_sandbox::Command::new(["true"]).cwd("missing")).contains("not a directory"));
    assert!(run(cordon_sandbox::Command::new(["true"]).env("A=B", "x")).contains("'='"));
    assert!(run(cordon_sandbox::Command::new(["tr\0ue"])).contains("NUL"));
    let err = sb
        .run(
            &cordon_sandbox::Command::new(["no-such-program"]),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(err, SandboxError::Exec { .. }), "{err}");
    // The sandbox still works after refusals.
    sh(&sb, "true").ok();
    let mut config = ws.config();
    config.workspace = "/nonexistent/cordon".into();
    assert!(matches!(
        Sandbox::new(config),
        Err(SandboxError::Workspace { .. })
    ));
    let mut config = ws.config();
    config.protected = vec!["../escape".into()];
    assert!(matches!(
        Sandbox::new(config),
        Err(SandboxError::Invalid(_))
    ));
}

/// Re-executed by `dies_with_its_parent` as a child process that runs a long sandboxed sleep.
#[test]
fn parent_death_helper() {
    let Ok(marker) = std::env::var("CORDON_PARENT_DEATH_MARKER") else {
        return;
    };
    let ws = Ws::new();
    let sb = ws.sandbox();
    println!("ready");
    let _ = sh(&sb, &format!("sleep {marker}"));
}

#[test]
fn dies_with_its_parent() {
    let marker = format!("34.{}", std::process::id());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "suite::hardening::parent_death_helper",
            "--nocapture",
        ])
        .env("CORDON_PARENT_DEATH_MARKER", &marker)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(lines.any(|l| l.unwrap().contains("ready")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_process_with(&format!("sleep {marker}")) {
        assert!(
            Instant::now() < deadline,
            "the sandboxed sleep never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while host_process_with(&format!("sleep {marker}")) {
        assert!(Instant::now() < deadline, "the sandbox outlived its parent");
        std::thread::sleep(Duration::from_millis(20));
    }
}
