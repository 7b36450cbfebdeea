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
