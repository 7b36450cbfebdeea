//! Attacks on the host through the kernel: its files, its processes, privileged calls.

use super::harness::*;

/// A Python one-liner calling `syscall(nr, args...)` through ctypes and printing errno.
fn syscall_py(call: &str) -> String {
    format!(
        "python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
         r = {call}; print(\"rc\", r, \"errno\", ctypes.get_errno())'"
    )
}

#[test]
fn blocks_reading_the_host_home() {
    let ws = Ws::new();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        &format!(
            "for p in {home} {home}/.ssh {home}/.aws {home}/.config /root /home /run/user; do \
               ls -a $p >/dev/null 2>&1 && echo SEEN $p; done; \
             cat /etc/shadow 2>/dev/null | grep -q : && echo SHADOW; \
             ls /etc/ssh/ 2>/dev/null | while read f; do case $f in ssh_host_*_key) \
               test -s /etc/ssh/$f && echo HOSTKEY;; esac; done; \
             grep -c . /etc/passwd; echo HOME=$HOME; echo done"
        ),
    );
    r.ok();
    assert!(!r.stdout.contains("SEEN"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("SHADOW") && !r.stdout.contains("HOSTKEY"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("HOME=/tmp"));
    // The sandbox's passwd is its own three lines, not the host's.
    assert!(r.stdout.lines().any(|l| l == "3"), "{}", r.stdout);
}

#[test]
fn blocks_host_processes_via_proc() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let me = std::process::id();
    let (r, _) = audited(
        &sb,
        &format!(
            "test -e /proc/{me} && echo SEEN_\"\"TEST; \
             ls /proc | grep -E '^[0-9]+$' | wc -l; \
             cat /proc/$$/cmdline | tr '\\0' ' '; echo; \
             kill -0 {me} 2>/dev/null && echo SIGNAL\"\"LED; echo done"
        ),
    );
    r.ok();
    assert!(
        !r.stdout.contains("SEEN_TEST") && !r.stdout.contains("SIGNALLED"),
        "{}",
        r.stdout
    );
    let count: u32 = r.stdout.lines().next().unwrap().trim().parse().unwrap();
    assert!(
        count <= 5,
        "only the sandbox's own processes are visible: {}",
        r.stdout
    );
    assert!(r.stdout.contains("/bin/sh -c"), "{}", r.stdout);
}

#[test]
fn blocks_ptrace() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    // PTRACE_TRACEME (0) and PTRACE_ATTACH (16) on the shell, its parent inside.
    let (r, _) = audited(
        &sb,
        &format!(
            "{}; {}; echo done",
            syscall_py("libc.ptrace(0, 0, 0, 0)"),
            syscall_py("libc.ptrace(16, 1, 0, 0)")
        ),
    );
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("rc")).collect();
    assert_eq!(lines, ["rc -1 errno 1", "rc -1 errno 1"], "{}", r.stdout);
}

#[test]
fn blocks_new_user_namespaces() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        &format!(
            "unshare -U true 2>/dev/null && echo UNSHARED; unshare -r -n true 2>/dev/null && echo UNSHARED2; \
             {}; {}; echo done",
            // unshare(CLONE_NEWUSER), clone(CLONE_NEWUSER|SIGCHLD)
            syscall_py("libc.unshare(0x10000000)"),
            syscall_py("libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)")
        ),
    );
    r.ok();
    assert!(!r.stdout.contains("UNSHARED"), "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("rc")).collect();
    assert_eq!(lines, ["rc -1 errno 1", "rc -1 errno 1"], "{}", r.stdout);
}

#[test]
fn blocks_mount() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        &format!(
            "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null && echo MOUNTED; \
             {}; {}; echo done",
            syscall_py("libc.mount(b\"none\", b\"/tmp/m\", b\"tmpfs\", 0, None)"),
            // fsopen("tmpfs", 0): the new mount API
            syscall_py("libc.syscall(430, b\"tmpfs\", 0)")
        ),
    );
    r.ok();
    assert!(!r.stdout.contains("MOUNTED"), "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("rc")).collect();
    assert_eq!(lines, ["rc -1 errno 1", "rc -1 errno 1"], "{}", r.stdout);
}

#[test]
fn blocks_mknod() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "mknod mem c 1 1 2>/dev/null && echo MADE1; mknod /tmp/sda b 8 0 2>/dev/null && echo MADE2; \
         mknod fifo p && echo FIFO_OK; echo done",
    );
    r.ok();
    assert!(!r.stdout.contains("MADE"), "{}", r.stdout);
    assert!(!ws.join("mem").exists());
    assert!(
        r.stdout.contains("FIFO_OK"),
        "a fifo is harmless and allowed: {}",
        r.stdout
    );
}

#[test]
fn blocks_setuid_binaries() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    // A setuid copy of `id` owned by the test's user (root in CI), planted in the workspace.
    std::fs::copy("/usr/bin/id", ws.join("suid-id")).unwrap();
    std::fs::set_permissions(ws.join("suid-id"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "./suid-id -u; ./suid-id -ru; su -c id root </dev/null 2>/dev/null && echo SU; \
         grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; echo done",
    );
    r.ok();
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("1000"), "{}", r.stdout);
    assert_eq!(lines.next(), Some("1000"), "{}", r.stdout);
    assert!(!r.stdout.contains("SU"));
    for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(cap) && l.ends_with("0000000000000000")),
            "{cap} not empty: {}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("NoNewPrivs") && l.ends_with('1'))
    );
}

#[test]
fn blocks_io_uring() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    // io_uring_setup(8, params)
    let (r, _) = audited(
        &sb,
        &format!(
            "{}; echo done",
            syscall_py("libc.syscall(425, 8, ctypes.create_string_buffer(120))")
        ),
    );
    r.ok();
    assert!(r.stdout.contains("rc -1 errno 1"), "{}", r.stdout);
}

#[test]
fn blocks_foreign_and_x32_system_calls() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    // getpid through the x32 number range (bit 30 set).
    let (r, _) = audited(
        &sb,
        &format!("{}; echo done", syscall_py("libc.syscall(0x40000000 | 39)")),
    );
    r.ok();
    assert!(r.stdout.contains("rc -1 errno 1"), "{}", r.stdout);
}
