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
