//! The whole loop through the MCP server: clone from a smart-HTTP git server through the
//! egress proxy, edit, run the project's tests in the sandbox, commit, push a branch; a push
//! that changes CI and a push to main are refused; the session's audit log verifies.

use std::path::Path;
use std::process::Command;

use cordon_testkit::GitServer;
use serde_json::json;

use super::Env;
use super::mcp::{Session, git};

/// A bare repository with a small project (a script and its test, and a CI file) on main.
fn git_server() -> GitServer {
    GitServer::seeded(|seed| {
        std::fs::create_dir_all(seed.join(".github/workflows")).unwrap();
        std::fs::write(seed.join("add.sh"), "echo $(($1 + $2))\n").unwrap();
        std::fs::write(
            seed.join("test.sh"),
            "set -e\n[ \"$(sh add.sh 2 3)\" = 5 ] || { echo 'add is wrong'; exit 1; }\necho tests passed\n",
        )
        .unwrap();
        std::fs::write(seed.join(".github/workflows/ci.yml"), "on: push\n").unwrap();
    })
}

fn branches(bare: &Path) -> String {
    let out = Command::new("git")
        .args(["branch", "--list"])
        .current_dir(bare)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The git server, an MCP session whose proxy lets `git.test` reach it on loopback, and the
/// repository's URL.
fn session_with_git_server() -> (GitServer, Session, String) {
    let srv = git_server();
    let config = "[network]\nallow = [\"git.test\"]\nallow_addresses = [\"127.0.0.0/8\"]\n\n\
                  [proxy]\nhosts = { \"git.test\" = [\"127.0.0.1\"] }\n";
    let s = Session::with(Env::new(), config, true);
    let url = format!("http://git.test:{}/cgi-bin/git/repo.git", srv.port);
    (srv, s, url)
}

#[test]
fn clone_edit_test_commit_push_through_the_proxy() {
    let (srv, s, url) = session_with_git_server();
    let bare = srv.bare();

    let r = s.ok("git_clone", json!({"url": url, "name": "proj"}));
    assert_eq!(r["workspace"], "proj");
    let ws = s.env.path("workspaces/proj");
    assert!(ws.join("add.sh").is_file());
    // Every later call names the new workspace.
    let call = |tool: &str, mut args: serde_json::Value| {
        args["workspace"] = json!("proj");
        s.ok(tool, args)
    };
    let refused = |tool: &str, mut args: serde_json::Value| {
        args["workspace"] = json!("proj");
        s.err(tool, args)
    };

    // The tests fail first: the agent breaks add, sees it, fixes it.
    call(
        "edit_file",
        json!({"path": "add.sh", "edits": [{"old_text": "$1 + $2", "new_text": "$1 - $2"}]}),
    );
    let r = call("exec", json!({"argv": ["sh", "test.sh"]}));
    assert_eq!(r["exit_code"], 1, "{r}");
    call(
        "edit_file",
        json!({"path": "add.sh", "edits": [{"old_text": "$1 - $2", "new_text": "$1 + $2"}]}),
    );
    call(
        "write_file",
        json!({"path": "NOTES.md", "content": "worked on add\n"}),
    );
    let r = call("exec", json!({"argv": ["sh", "test.sh"]}));
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["stdout"], "tests passed\n");

    call(
        "git_checkout",
        json!({"branch": "agent/notes", "create": true}),
    );
    call("git_add", json!({"paths": ["NOTES.md", "add.sh"]}));
    call("git_commit", json!({"message": "notes on add"}));
    call("git_push", json!({"branch": "agent/notes"}));
    assert!(
        branches(&bare).contains("agent/notes"),
        "{}",
        branches(&bare)
    );
    call("git_fetch", json!({}));
    let b = call("git_branch", json!({}));
    assert!(
        b["output"]
            .as_str()
            .unwrap()
            .contains("remotes/origin/agent/notes"),
        "{b}"
    );

    // A push to main.
    call("git_checkout", json!({"branch": "main"}));
    call(
        "write_file",
        json!({"path": "NOTES.md", "content": "straight to main\n"}),
    );
    call("git_add", json!({"paths": ["NOTES.md"]}));
    call("git_commit", json!({"message": "to main"}));
    let msg = refused("git_push", json!({"branch": "main"}));
    assert!(msg.contains("branch main is protected"), "{msg}");

    // The agent cannot change the CI file itself.
    let msg = refused(
        "write_file",
        json!({"path": ".github/workflows/ci.yml", "content": "x"}),
    );
    assert!(msg.contains("denied by policy"), "{msg}");
    // A branch whose commits change CI (made on the host, as a teammate's commit would be).
    git(&ws, &["checkout", "-q", "-b", "agent/ci"]);
    std::fs::write(ws.join(".github/workflows/ci.yml"), "on: push\njobs: {}\n").unwrap();
    git(&ws, &["commit", "-qam", "change ci"]);
    let msg = refused("git_push", json!({"branch": "agent/ci"}));
    assert!(
        msg.contains("protected file .github/workflows/ci.yml"),
        "{msg}"
    );
    assert!(!branches(&bare).contains("agent/ci"));
    // Not around the tool either: git itself, run by exec, meets the proxy's git policy on
    // the branch it pushes to.
    let r = call("exec", json!({"argv": ["git", "push", "origin", "main"]}));
    assert_ne!(r["exit_code"], 0, "{r}");
    assert!(!branches(&bare).is_empty());
    let main_now = Command::new("git")
        .args(["log", "-1", "--format=%s", "main"])
        .current_dir(&bare)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&main_now.stdout).trim(), "seed");

    // The session's log: tool calls, egress through the proxy, sandboxed runs; and it verifies.
    let recs = s.records();
    assert!(
        recs.iter().any(|r| r["kind"] == "egress"),
        "no egress records"
    );
    assert!(recs.iter().any(|r| r["kind"] == "tool_call"
        && r["action"] == "git_push"
        && r["outcome"] == "denied"));
    let env = s.close();
    let log = env.log();
    let verified = env.run(&["audit", "verify", log.to_str().unwrap()]);
    verified.expect(0);
}

#[test]
fn parallel_tasks_clone_into_workspaces_of_their_own_each_on_its_own_branch() {
    let (srv, s, url) = session_with_git_server();
    let bare = srv.bare();

    // A branch name that is an option or a range is refused before anything is made.
    for bad in ["-f", "a..b", "x.lock"] {
        let msg = s.err(
            "git_clone",
            json!({"url": url, "name": "bad", "branch": bad}),
        );
        assert!(msg.contains("not a valid"), "{bad}: {msg}");
        assert!(!s.env.path("workspaces/bad").exists());
    }

    for task in ["a", "b"] {
        let r = s.ok(
            "git_clone",
            json!({"url": url, "name": task, "branch": format!("task/{task}")}),
        );
        assert_eq!(r["branch"], format!("task/{task}"), "{r}");
    }
    // Each works in its own workspace and sandbox, on its own branch, and pushes it.
    for task in ["a", "b"] {
        let call = |tool: &str, mut args: serde_json::Value| {
            args["workspace"] = json!(task);
            s.ok(tool, args)
        };
        let st = call("git_status", json!({}));
        assert!(
            st["output"]
                .as_str()
                .unwrap()
                .contains(&format!("task/{task}")),
            "{st}"
        );
        call(
            "write_file",
            json!({"path": format!("{task}.txt"), "content": format!("task {task}\n")}),
        );
        call("git_add", json!({"paths": [format!("{task}.txt")]}));
        call("git_commit", json!({"message": format!("task {task}")}));
        call("git_push", json!({"branch": format!("task/{task}")}));
    }
    let listed = branches(&bare);
    assert!(
        listed.contains("task/a") && listed.contains("task/b"),
        "{listed}"
    );
    // Neither task saw the other's file.
    assert!(!s.env.path("workspaces/a/b.txt").exists());
    assert!(!s.env.path("workspaces/b/a.txt").exists());
}
