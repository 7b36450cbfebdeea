//! `cordon mcp` driven by rmcp's own client over stdio: every tool family, policy denials,
//! path escapes, secret redaction, progress and cancellation, and the audit trail.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientRequest, Request};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use super::Env;

/// Counts progress notifications.
#[derive(Clone, Default)]
struct Client {
    progress: Arc<AtomicU64>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        _params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Session {
    pub env: Env,
    pub ws: std::path::PathBuf,
    client: RunningService<RoleClient, Client>,
    progress: Arc<AtomicU64>,
    rt: tokio::runtime::Runtime,
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Session {
    fn start() -> Session {
        let env = Env::new();
        env.write("ws/src/lib.rs", "fn main() {\n    println!(\"hi\");\n}\n");
        env.write("ws/.gitignore", "target/\n");
        env.write("ws/target/junk.o", "junk");
        Session::with(env, "", false)
    }

    /// `cordon mcp` on `env`'s `ws` directory with `config` as cordon.toml; with `network`,
    /// an embedded proxy.
    pub fn with(env: Env, config: &str, network: bool) -> Session {
        let ws = env.path("ws");
        std::fs::create_dir_all(&ws).unwrap();
        env.write("cordon.toml", config);
        let spawned = env.path("workspaces");
        let mut args = vec![
            "--config",
            "cordon.toml",
            "mcp",
            "--workspace",
            ws.to_str().unwrap(),
            "--workspaces-dir",
            spawned.to_str().unwrap(),
        ];
        if !network {
            args.push("--no-network");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cmd = tokio::process::Command::from(env.command(&args));
        cmd.stderr(std::process::Stdio::inherit());
        let client = Client::default();
        let progress = Arc::clone(&client.progress);
        let running = rt
            .block_on(async { client.serve(TokioChildProcess::new(cmd).unwrap()).await })
            .unwrap();
        Session {
            env,
            ws,
            client: running,
            progress,
            rt,
        }
    }

    pub fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let Value::Object(map) = args else { panic!() };
        self.rt
            .block_on(
                self.client
                    .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map)),
            )
            .unwrap()
    }

    pub fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args);
        assert_ne!(r.is_error, Some(true), "{tool}: {}", text(&r));
        r.structured_content.clone().expect("structured content")
    }

    /// Calls `tool` until `done` holds for its result (at most 20 s); returns that result.
    pub fn poll(&self, tool: &str, args: Value, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.ok(tool, args.clone());
            if done(&r) {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{tool} never got there: {r}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn err(&self, tool: &str, args: Value) -> String {
        let r = self.call(tool, args);
        assert_eq!(r.is_error, Some(true), "{tool} should fail: {}", text(&r));
        text(&r)
    }

    /// Closes the client (the server exits with its stdin) and keeps the scratch directory.
    pub fn close(self) -> Env {
        let Session {
            env, client, rt, ..
        } = self;
        let _ = rt.block_on(client.cancel());
        drop(rt);
        env
    }

    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.env.log()).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lists_every_tool_with_annotations() {
    let s = Session::start();
    let tools = s.rt.block_on(s.client.list_all_tools()).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in [
        "read_file",
        "read_many",
        "write_file",
        "edit_file",
        "list_dir",
        "tree",
        "find",
        "grep",
        "file_info",
        "make_dir",
        "move_path",
        "copy_file",
        "delete_path",
        "exec",
        "process_start",
        "process_read",
        "process_write",
        "process_kill",
        "process_list",
        "git_status",
        "git_diff",
        "git_log",
        "git_show",
        "git_branch",
        "git_checkout",
        "git_add",
        "git_commit",
        "git_reset",
        "git_stash",
        "git_push",
        "git_fetch",
        "git_clone",
    ] {
        assert!(names.contains(&want), "missing {want}");
    }
    let read = tools.iter().find(|t| t.name == "read_file").unwrap();
    let a = read.annotations.as_ref().unwrap();
    assert_eq!(a.read_only_hint, Some(true));
    let del = tools.iter().find(|t| t.name == "delete_path").unwrap();
    assert_eq!(
        del.annotations.as_ref().unwrap().destructive_hint,
        Some(true)
    );
    assert!(
        read.input_schema
            .get("properties")
            .unwrap()
            .get("path")
            .is_some()
    );
    // Structured results come with their schema, generated from the same types.
    for t in &tools {
        let schema = t.output_schema.as_ref().expect("an output schema");
        // Clients (the TypeScript SDK, so the Inspector) refuse a root that is not an object.
        assert_eq!(schema.get("type"), Some(&json!("object")), "{}", t.name);
    }
    let out = read.output_schema.as_ref().unwrap();
    assert!(out.get("properties").unwrap().get("total_lines").is_some());
}

#[test]
fn file_tools_read_write_edit_list_find_grep() {
    let s = Session::start();
    let r = s.ok(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": 2, "end_line": 2}),
    );
    assert_eq!(r["content"], "    println!(\"hi\");\n");
    assert_eq!(r["total_lines"], 3);

    s.ok(
        "write_file",
        json!({"path": "notes/a.txt", "content": "one\ntwo\n", "create_dirs": true}),
    );
    assert_eq!(
        std::fs::read_to_string(s.ws.join("notes/a.txt")).unwrap(),
        "one\ntwo\n"
    );

    let e = s.ok("edit_file", json!({"path": "notes/a.txt", "edits": [{"old_text": "two", "new_text": "three"}], "dry_run": true}));
    assert!(e["diff"].as_str().unwrap().contains("+three"));
    assert_eq!(
        std::fs::read_to_string(s.ws.join("notes/a.txt")).unwrap(),
        "one\ntwo\n"
    );
    s.ok(
        "edit_file",
        json!({"path": "notes/a.txt", "edits": [{"old_text": "two", "new_text": "three"}]}),
    );
    assert_eq!(
        std::fs::read_to_string(s.ws.join("notes/a.txt")).unwrap(),
        "one\nthree\n"
    );
    let miss = s.err(
        "edit_file",
        json!({"path": "notes/a.txt", "edits": [{"old_text": "thre3", "new_text": "x"}]}),
    );
    assert!(miss.contains("closest line is 2"), "{miss}");

    // Changed behind the agent's back: the edit is refused until it reads again.
    std::fs::write(s.ws.join("notes/a.txt"), "one\nthree\nfour\n").unwrap();
    let stale = s.err(
        "edit_file",
        json!({"path": "notes/a.txt", "edits": [{"old_text": "one", "new_text": "1"}]}),
    );
    assert!(stale.contains("changed since you last read it"), "{stale}");
    s.ok("read_file", json!({"path": "notes/a.txt"}));
    s.ok(
        "edit_file",
        json!({"path": "notes/a.txt", "edits": [{"old_text": "one", "new_text": "1"}]}),
    );

    let l = s.ok("list_dir", json!({"depth": 3}));
    let paths: Vec<&str> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"src/lib.rs"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("target")),
        "gitignored: {paths:?}"
    );
    let t = s.ok("tree", json!({}));
    assert!(t["tree"].as_str().unwrap().contains("lib.rs"));
    let f = s.ok("find", json!({"pattern": "**/*.rs"}));
    assert_eq!(f["paths"], json!(["src/lib.rs"]));
    let g = s.ok("grep", json!({"pattern": "print(ln)?!", "glob": "*.rs"}));
    assert_eq!(g["matches"][0]["path"], "src/lib.rs");
    assert_eq!(g["matches"][0]["line"], 2);
    let i = s.ok("file_info", json!({"path": "src/lib.rs"}));
    assert_eq!(i["type"], "file");

    s.ok("make_dir", json!({"path": "a/b/c"}));
    assert!(s.ws.join("a/b/c").is_dir());
    s.ok("copy_file", json!({"from": "src/lib.rs", "to": "a/lib.rs"}));
    s.ok(
        "move_path",
        json!({"from": "a/lib.rs", "to": "a/b/moved.rs"}),
    );
    assert!(s.ws.join("a/b/moved.rs").is_file());
    s.err("delete_path", json!({"path": "a"}));
    s.ok("delete_path", json!({"path": "a", "recursive": true}));
    assert!(!s.ws.join("a").exists());
    let many = s.ok("read_many", json!({"paths": ["src/lib.rs", "nope.txt"]}));
    assert!(
        many["files"][1]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    // One record per call, with the tool and its outcome.
    let recs = s.records();
    let calls: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "tool_call").collect();
    assert_eq!(calls.len(), 19, "one record per call");
    assert!(
        calls
            .iter()
            .any(|r| r["action"] == "edit_file" && r["outcome"] == "error")
    );
}

#[test]
fn policy_denies_a_ci_file_with_its_reason() {
    let s = Session::start();
    let msg = s.err(
        "write_file",
        json!({"path": ".github/workflows/ci.yml", "content": "x", "create_dirs": true}),
    );
    assert!(
        msg.contains("denied by policy") && msg.contains(".github/workflows"),
        "{msg}"
    );
    assert!(!s.ws.join(".github/workflows/ci.yml").exists());
    // Through a symlink that dresses the directory up as something else.
    std::fs::create_dir_all(s.ws.join(".github/workflows")).unwrap();
    std::os::unix::fs::symlink(".github/workflows", s.ws.join("innocent")).unwrap();
    let msg = s.err(
        "write_file",
        json!({"path": "innocent/ci.yml", "content": "x"}),
    );
    assert!(msg.contains("denied by policy"), "{msg}");
    assert!(!s.ws.join(".github/workflows/ci.yml").exists());
    let rec = s
        .records()
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "tool_call")
        .unwrap();
    assert_eq!(rec["outcome"], "denied");
}

#[test]
fn copies_a_directory_tree_within_policy() {
    let s = Session::start();
    std::fs::create_dir_all(s.ws.join("tpl/sub/deeper")).unwrap();
    std::fs::write(s.ws.join("tpl/a.txt"), "alpha\n").unwrap();
    std::fs::write(s.ws.join("tpl/sub/deeper/b.txt"), "beta\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.ws.join("tpl/sub/host")).unwrap();

    let msg = s.err("copy_file", json!({"from": "tpl", "to": "out"}));
    assert!(msg.contains("set recursive"), "{msg}");
    let msg = s.err(
        "copy_file",
        json!({"from": "tpl", "to": "tpl/sub/again", "recursive": true}),
    );
    assert!(msg.contains("into itself"), "{msg}");

    let r = s.ok(
        "copy_file",
        json!({"from": "tpl", "to": "out", "recursive": true}),
    );
    assert_eq!(r["files"], 2, "{r}");
    assert_eq!(r["bytes"], 11);
    // The link is not copied (neither as a link nor as the host file it points to).
    assert_eq!(r["skipped"], json!(["tpl/sub/host"]));
    assert_eq!(
        std::fs::read_to_string(s.ws.join("out/sub/deeper/b.txt")).unwrap(),
        "beta\n"
    );
    assert!(std::fs::symlink_metadata(s.ws.join("out/sub/host")).is_err());
    let msg = s.err(
        "copy_file",
        json!({"from": "tpl", "to": "out", "recursive": true}),
    );
    assert!(msg.contains("already exists"), "{msg}");

    // Into a protected directory: the first file is refused by policy, with its reason.
    std::fs::create_dir_all(s.ws.join(".github")).unwrap();
    let msg = s.err(
        "copy_file",
        json!({"from": "tpl", "to": ".github/workflows", "recursive": true}),
    );
    assert!(
        msg.contains("denied by policy") && msg.contains(".github/workflows"),
        "{msg}"
    );
    assert!(!s.ws.join(".github/workflows/a.txt").exists());
}

#[test]
fn refuses_path_escapes() {
    let s = Session::start();
    std::fs::write(s.env.path("outside.txt"), "host secret file").unwrap();
    for path in ["../outside.txt", "/etc/passwd", "src/../../outside.txt"] {
        let msg = s.err("read_file", json!({"path": path}));
        assert!(msg.contains("outside the workspace"), "{path}: {msg}");
    }
    std::os::unix::fs::symlink(s.env.path("outside.txt"), s.ws.join("link")).unwrap();
    let msg = s.err("read_file", json!({"path": "link"}));
    assert!(msg.contains("outside the workspace"), "{msg}");
    std::os::unix::fs::symlink(s.env.dir.path(), s.ws.join("up")).unwrap();
    let msg = s.err(
        "write_file",
        json!({"path": "up/planted.txt", "content": "x"}),
    );
    assert!(msg.contains("outside the workspace"), "{msg}");
    assert!(!s.env.path("planted.txt").exists());
}

#[test]
fn a_symlink_swapped_in_during_calls_never_escapes() {
    let s = Session::start();
    std::fs::write(s.env.path("outside.txt"), "host").unwrap();
    std::fs::create_dir_all(s.ws.join("d")).unwrap();
    std::fs::write(s.ws.join("d/f.txt"), "inside").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (ws, outside, stop) = (s.ws.clone(), s.env.dir.path().to_owned(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = std::fs::rename(ws.join("d"), ws.join("d.real"));
                let _ = std::os::unix::fs::symlink(&outside, ws.join("d"));
                let _ = std::fs::remove_file(ws.join("d"));
                let _ = std::fs::rename(ws.join("d.real"), ws.join("d"));
            }
        })
    };
    for _ in 0..200 {
        let r = s.call("read_file", json!({"path": "d/outside.txt"}));
        assert!(
            !text(&r).contains("\"host\""),
            "read through the swapped link"
        );
        let _ = s.call(
            "write_file",
            json!({"path": "d/planted.txt", "content": "x"}),
        );
        assert!(
            !s.env.path("planted.txt").exists(),
            "wrote through the swapped link"
        );
    }
    stop.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
}

#[test]
fn redacts_a_secret_read_from_dot_env() {
    let s = Session::start();
    let key = "ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK";
    s.env
        .write("ws/.env", &format!("GITHUB_TOKEN={key}\nOTHER=1\n"));
    let r = s.call("read_file", json!({"path": ".env"}));
    let all = format!("{} {:?}", text(&r), r.structured_content);
    assert!(!all.contains(key), "the secret reached the model");
    assert!(all.contains("OTHER=1"));
    // The exec output is screened too.
    let r = s.call("exec", json!({"argv": ["cat", ".env"]}));
    assert!(!format!("{} {:?}", text(&r), r.structured_content).contains(key));
    // Error messages quote arguments and program output: redacted as well.
    let msg = s.err("read_file", json!({"path": format!("nope/{key}.txt")}));
    assert!(!msg.contains(key), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    // And the log holds a fingerprint, never the secret.
    let log = std::fs::read_to_string(s.env.log()).unwrap();
    assert!(!log.contains(key));
    assert!(log.contains("\"redacted\":true"));
}

#[test]
fn exec_runs_in_the_sandbox() {
    let s = Session::start();
    let r = s.ok(
        "exec",
        json!({"command": "echo $((6*7)); id -u; touch made.txt"}),
    );
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "42\n1000\n");
    assert!(s.ws.join("made.txt").exists());
    let r = s.ok("exec", json!({"argv": ["sh", "-c", "exit 3"]}));
    assert_eq!(r["exit_code"], 3);
    let r = s.ok(
        "exec",
        json!({"argv": ["sh", "-c", "echo x > /etc/x"], "cwd": "src"}),
    );
    assert_ne!(r["exit_code"], 0);
    let r = s.ok("exec", json!({"argv": ["sleep", "5"], "timeout_secs": 1}));
    assert_eq!(r["timed_out"], true);
    s.err("exec", json!({"argv": ["true"], "cwd": "../"}));
    s.err("exec", json!({}));
}

#[test]
fn exec_reports_progress_and_cancellation_kills_the_tree() {
    let s = Session::start();
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("exec").with_arguments(
            json!({"command": "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.3; done; touch finished; sleep 30; touch late"})
                .as_object()
                .unwrap()
                .clone(),
        ),
    ));
    let handle =
        s.rt.block_on(
            s.client
                .send_cancellable_request(request, PeerRequestOptions::no_options()),
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !s.ws.join("finished").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never got going"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        s.progress.load(Ordering::SeqCst) >= 2,
        "progress notifications"
    );
    s.rt.block_on(handle.cancel(Some("test".into()))).unwrap();
    // The tree dies: `late` is never made, and the record says cancelled.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let recs = s.records();
        if let Some(r) = recs.iter().find(|r| r["action"] == "exec") {
            assert_eq!(r["detail"]["exit"]["cancelled"], true, "{r}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record of the cancelled exec"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!s.ws.join("late").exists());
}

#[test]
fn background_processes_start_read_and_die() {
    let s = Session::start();
    let r = s.ok(
        "process_start",
        json!({"command": "echo started; sleep 60"}),
    );
    let id = r["id"].as_u64().unwrap();
    let r = s.poll("process_read", json!({"id": id}), |r| {
        r["output"] == "started\n"
    });
    assert_eq!(r["running"], true);
    assert_eq!(r["next_offset"], 8);
    let l = s.ok("process_list", json!({}));
    assert_eq!(l["processes"][0]["id"], id);
    s.ok("process_kill", json!({"id": id}));
    let r = s.poll("process_read", json!({"id": id, "offset": 8}), |r| {
        r["running"] == false
    });
    assert_eq!(r["result"]["killed"], true);
    s.err("process_read", json!({"id": 999}));
}

#[test]
fn background_processes_take_a_signal_and_clean_up() {
    let s = Session::start();
    let r = s.ok(
        "process_start",
        json!({"command": "trap 'echo cleaning up; exit 7' TERM; echo ready; while :; do sleep 0.05; done"}),
    );
    let id = r["id"].as_u64().unwrap();
    s.poll("process_read", json!({"id": id}), |r| {
        r["output"] == "ready\n"
    });
    // A signal outside the list is refused by the schema, and the process goes on.
    s.err("process_kill", json!({"id": id, "signal": "STOP"}));
    let k = s.ok("process_kill", json!({"id": id, "signal": "TERM"}));
    assert_eq!(k["signal"], "TERM");
    assert_eq!(k["was_running"], true);
    let r = s.poll("process_read", json!({"id": id}), |r| r["running"] == false);
    // The group got it: the trap ran, and the shell may also report its `sleep` terminated
    // (on stderr, so in either order).
    let out = r["output"].as_str().unwrap();
    assert!(out.starts_with("ready\n"), "{out}");
    assert!(out.contains("cleaning up\n"), "{out}");
    assert_eq!(r["result"]["exit_code"], 7, "{r}");
    assert_eq!(r["result"]["killed"], false);
}

#[test]
fn git_tools_commit_with_hooks_off_and_refuse_injection() {
    let s = Session::start();
    git(&s.ws, &["init", "-q", "-b", "main"]);
    git(&s.ws, &["add", "."]);
    git(&s.ws, &["commit", "-qm", "first"]);
    // A hook that would run on commit: it must not.
    s.env.write(
        "ws/.git/hooks/pre-commit",
        "#!/bin/sh\ntouch /workspace/hook-ran\n",
    );
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(s.ws.join(".git/hooks/pre-commit"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        s.ws.join(".git/hooks/pre-commit"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    s.ok(
        "git_checkout",
        json!({"branch": "agent/work", "create": true}),
    );
    s.ok(
        "write_file",
        json!({"path": "src/new.rs", "content": "// new\n"}),
    );
    let st = s.ok("git_status", json!({}));
    assert!(
        st["output"].as_str().unwrap().contains("src/new.rs"),
        "{st}"
    );
    s.ok("git_add", json!({"paths": ["src/new.rs"]}));
    let d = s.ok("git_diff", json!({"staged": true}));
    assert!(d["output"].as_str().unwrap().contains("+// new"));
    s.ok("git_commit", json!({"message": "add new"}));
    assert!(!s.ws.join("hook-ran").exists(), "a hook ran");
    let log = s.ok("git_log", json!({"max_count": 5}));
    assert_eq!(log["commits"][0]["subject"], "add new");
    let show = s.ok("git_show", json!({"rev": "HEAD"}));
    assert!(show["output"].as_str().unwrap().contains("src/new.rs"));
    let b = s.ok("git_branch", json!({}));
    assert!(b["output"].as_str().unwrap().contains("agent/work"));
    s.ok(
        "write_file",
        json!({"path": "src/new.rs", "content": "// changed\n"}),
    );
    s.ok("git_stash", json!({}));
    assert_eq!(
        std::fs::read_to_string(s.ws.join("src/new.rs")).unwrap(),
        "// new\n"
    );
    s.ok("git_stash", json!({"action": "pop"}));
    s.ok("git_reset", json!({"mode": "hard"}));
    // Option injection through a ref or a path goes nowhere.
    let msg = s.err("git_diff", json!({"against": "--output=/workspace/pwned"}));
    assert!(msg.contains("not a valid ref"), "{msg}");
    let msg = s.err("git_log", json!({"rev": "--exec=touch x"}));
    assert!(msg.contains("not a valid ref"), "{msg}");
    let msg = s.err("git_add", json!({"paths": ["--all"]}));
    assert!(msg.contains("did not match"), "{msg}");
    assert!(!s.ws.join("pwned").exists());
}

#[test]
fn exec_outliving_its_wait_goes_on_as_a_process() {
    let s = Session::start();
    let r = s.ok(
        "exec",
        json!({"command": "sleep 2; echo done late", "wait_secs": 1}),
    );
    assert_eq!(r["running"], true, "{r}");
    let id = r["id"].as_u64().unwrap();
    let r = s.poll("process_read", json!({"id": id}), |r| r["running"] == false);
    assert_eq!(r["output"], "done late\n");
    assert_eq!(r["result"]["exit_code"], 0);
}

#[test]
fn a_background_process_reads_what_the_agent_writes() {
    let s = Session::start();
    let r = s.ok(
        "process_start",
        json!({"command": "read name; echo \"hello $name\"; cat; echo bye"}),
    );
    let id = r["id"].as_u64().unwrap();
    let w = s.ok("process_write", json!({"id": id, "data": "agent\n"}));
    assert_eq!(w["all_written"], true);
    s.ok(
        "process_write",
        json!({"id": id, "data": "more\n", "close": true}),
    );
    let r = s.poll("process_read", json!({"id": id}), |r| r["running"] == false);
    assert_eq!(r["output"], "hello agent\nmore\nbye\n");
    let msg = s.err("process_write", json!({"id": id, "data": "late"}));
    assert!(msg.contains("closed"), "{msg}");
}
