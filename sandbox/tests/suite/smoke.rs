use super::harness::*;

#[test]
fn runs_a_shell_in_the_workspace() {
    let ws = Ws::new();
    ws.write("hello.txt", "hi from the host\n");
    let sb = ws.sandbox();
    let r = sh(
        &sb,
        "id; pwd; cat hello.txt; echo made > new.txt; ls /; hostname",
    );
    println!("{}\n{}\n{:#?}", r.stdout, r.stderr, r.outcome);
    r.ok();
    assert!(r.stdout.contains("uid=1000"));
    assert!(r.stdout.contains("/workspace"));
    assert_eq!(
        std::fs::read_to_string(ws.join("new.txt")).unwrap(),
        "made\n"
    );
}

#[test]
fn stdin_is_end_of_file_unless_fed_and_feeds_a_running_command() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    // Without a feeder, stdin reads end-of-file at once.
    let r = sh(&sb, "cat; echo eof");
    r.ok();
    assert_eq!(r.stdout, "eof\n");
    // With one: a line written before the run waits for it; a thread types a second line
    // while the command runs, then closes its input.
    let stdin = cordon_sandbox::Stdin::new();
    assert_eq!(stdin.write(b"typed line\n").unwrap(), 11);
    let feeder = {
        let stdin = stdin.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert_eq!(stdin.write(b"second\n").unwrap(), 7);
            stdin.close();
        })
    };
    let cmd = cordon_sandbox::Command::new([
        "/bin/sh",
        "-c",
        "read line; echo \"got: $line\"; cat; echo done",
    ])
    .stdin(stdin.clone());
    let r = run_cmd(&sb, &cmd);
    feeder.join().unwrap();
    r.ok();
    assert_eq!(r.stdout, "got: typed line\nsecond\ndone\n");
    // After the run the slot is closed.
    assert!(stdin.write(b"late").is_err());
}

/// On another thread: once the command has created every file in `ready` (bounded wait), sends
/// each signal in turn, 200 ms apart.
fn signal_when_ready(
    ws: &Ws,
    ready: &[&str],
    cancel: &cordon_sandbox::Cancel,
    signals: Vec<cordon_sandbox::Signal>,
) -> std::thread::JoinHandle<()> {
    use std::time::{Duration, Instant};
    let ready: Vec<_> = ready.iter().map(|r| ws.join(r)).collect();
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.iter().all(|p| p.exists()) {
            assert!(Instant::now() < deadline, "the command never got ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        for s in signals {
            cancel.signal(s);
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[test]
fn forwards_a_signal_to_the_command_and_its_children() {
    use cordon_sandbox::{Cancel, Command, Exit, Signal};
    let ws = Ws::new();
    let sb = ws.sandbox();
    // The shell and its background child (same process group) both get USR1; then TERM ends
    // the shell with its own status. (Not INT for the child: sh starts background jobs with
    // INT ignored, and a subshell cannot trap a signal ignored on entry.)
    let script = "\
        (trap 'echo child got USR1; exit 0' USR1; touch child-ready; while :; do sleep 0.02; done) & \
        trap 'echo shell got USR1' USR1; \
        trap 'echo shell got TERM; wait; exit 3' TERM; \
        touch shell-ready; \
        while :; do sleep 0.02; done";
    let cancel = Cancel::new().unwrap();
    let sender = signal_when_ready(
        &ws,
        &["shell-ready", "child-ready"],
        &cancel,
        vec![Signal::User1, Signal::Terminate],
    );
    let cmd = Command::new(["/bin/sh", "-c", script])
        .timeout(std::time::Duration::from_secs(30))
        .cancel(cancel);
    let r = run_cmd(&sb, &cmd);
    sender.join().unwrap();
    assert_eq!(r.outcome.exit, Exit::Code(3), "{}", r.stderr);
    assert!(!r.outcome.cancelled && !r.outcome.timed_out);
    assert!(r.stdout.contains("child got USR1\n"), "{}", r.stdout);
    assert!(r.stdout.contains("shell got USR1\n"), "{}", r.stdout);
    assert!(r.stdout.contains("shell got TERM\n"), "{}", r.stdout);
}

#[test]
fn an_unhandled_signal_ends_the_command_by_that_signal() {
    use cordon_sandbox::{Cancel, Command, Exit, Signal};
    let ws = Ws::new();
    let sb = ws.sandbox();
    let cancel = Cancel::new().unwrap();
    let sender = signal_when_ready(&ws, &["ready"], &cancel, vec![Signal::Terminate]);
    let cmd = Command::new(["/bin/sh", "-c", "touch ready; exec sleep 30"])
        .timeout(std::time::Duration::from_secs(30))
        .cancel(cancel);
    let r = run_cmd(&sb, &cmd);
    sender.join().unwrap();
    assert_eq!(r.outcome.exit, Exit::Signal(libc::SIGTERM), "{}", r.stderr);
    assert!(!r.outcome.cancelled && !r.outcome.timed_out);
}
