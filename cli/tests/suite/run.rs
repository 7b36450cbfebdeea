//! `cordon run` and `cordon doctor` end to end: the real binary, a real sandbox, the audit log.

use super::*;

fn records(env: &Env) -> Vec<serde_json::Value> {
    cordon_audit::read::records(&env.log(), false).unwrap()
}

fn workspace(env: &Env) -> String {
    let ws = env.path("ws");
    std::fs::create_dir_all(ws.join(".github/workflows")).unwrap();
    std::fs::write(ws.join(".github/workflows/ci.yml"), "on: push\n").unwrap();
    std::fs::write(ws.join("notes.txt"), "from the host\n").unwrap();
    ws.to_str().unwrap().to_owned()
}

/// `cordon --config cordon.toml run --workspace WS OPTIONS... -- COMMAND...`
fn run_in<'a>(ws: &'a str, options: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["--config", "cordon.toml", "run", "--workspace", ws];
    argv.extend_from_slice(options);
    argv.push("--");
    argv.extend_from_slice(command);
    argv
}

#[test]
fn runs_a_command_streams_output_and_returns_its_status() {
    let env = Env::new();
    let ws = workspace(&env);
    let r = env.run(&[
        "run",
        "--workspace",
        &ws,
        "--",
        "sh",
        "-c",
        "cat notes.txt; echo to-stderr >&2; echo made > out.txt; exit 7",
    ]);
    r.expect(7);
    assert_eq!(r.stdout(), "from the host\n");
    assert!(r.stderr().contains("to-stderr"));
    assert_eq!(
        std::fs::read_to_string(env.path("ws/out.txt")).unwrap(),
        "made\n"
    );
    let rec = records(&env);
    let last = rec.last().unwrap();
    assert_eq!(last["kind"], "sandbox");
    assert_eq!(last["actor"], "cli");
    assert_eq!(last["outcome"], "exit 7");
    assert_eq!(last["detail"]["level"], "full");
    assert_eq!(last["detail"]["isolation"]["protected_mounts"], 1);
}

#[test]
fn the_files_policy_decides_what_stays_read_only() {
    let env = Env::new();
    let ws = workspace(&env);
    let r = env.run(&[
        "run",
        "--workspace",
        &ws,
        "--",
        "sh",
        "-c",
        "echo evil >> .github/workflows/ci.yml || echo refused; echo evil > .gitlab-ci.yml || echo refused2",
    ]);
    r.expect(0);
    assert_eq!(r.stdout(), "refused\nrefused2\n", "{}", r.stderr());
    assert_eq!(
        std::fs::read_to_string(env.path("ws/.github/workflows/ci.yml")).unwrap(),
        "on: push\n"
    );
    // A pattern added in cordon.toml is protected too.
    env.write("cordon.toml", "[files]\nprotect = [\"secrets/**\"]\n");
    std::fs::create_dir_all(env.path("ws/secrets")).unwrap();
    let r = env.run(&run_in(
        &ws,
        &[],
        &["sh", "-c", "echo x > secrets/new || echo refused"],
    ));
    assert_eq!(r.stdout(), "refused\n", "{}", r.stderr());
}

#[test]
fn a_missing_program_and_a_timeout_have_their_own_status() {
    let env = Env::new();
    let ws = workspace(&env);
    env.run(&["run", "--workspace", &ws, "--", "no-such-program"])
        .fails(127, "cannot execute no-such-program");
    let r = env.run(&[
        "run",
        "--workspace",
        &ws,
        "--timeout",
        "0.3",
        "--",
        "sleep",
        "30",
    ]);
    r.fails(137, "timed out");
    let rec = records(&env);
    assert_eq!(rec[0]["outcome"], "not found");
    assert_eq!(rec[1]["outcome"], "timeout");
    env.run(&["run", "--workspace", &ws, "--timeout=-1", "--", "true"])
        .fails(125, "--timeout must be a positive number");
}

#[test]
fn secrets_in_the_command_line_never_reach_the_audit_log() {
    let env = Env::new();
    let ws = workspace(&env);
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    env.run(&["run", "--workspace", &ws, "--", "echo", token])
        .expect(0);
    let text = std::fs::read_to_string(env.log()).unwrap();
    assert!(!text.contains(token), "{text}");
    assert!(text.contains("[REDACTED:github-pat]"));
}

#[test]
fn bad_requests_get_clear_errors() {
    let env = Env::new();
    let ws = workspace(&env);
    env.run(&["run", "--workspace", &ws, "--cwd", "../..", "--", "true"])
        .fails(125, "must be relative to the workspace");
    env.run(&["run", "--workspace", "/nonexistent/ws", "--", "true"])
        .fails(125, "/nonexistent/ws");
    env.run(&[
        "run",
        "--workspace",
        &ws,
        "--allow-weaker",
        "seccomp",
        "--",
        "true",
    ])
    .fails(125, "unknown weaker level");
    env.write("cordon.toml", "[sandbox]\nmemory_mb = 5\n");
    env.run(&["--config", "cordon.toml", "run", "--", "true"])
        .fails(125, "unknown field `memory_mb`");
    // A policy set without the protected list is refused, not read as "nothing protected".
    std::fs::remove_file(env.path("cordon.toml")).unwrap();
    env.write(
        "pol/files.rego",
        "package cordon.files\nimport rego.v1\ndefault deny := set()\n",
    );
    let mut cmd = env.command(&["run", "--workspace", &ws, "--", "true"]);
    cmd.env("CORDON_POLICY_DIR", env.path("pol"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data.cordon.files.protected"), "{stderr}");
}

#[test]
fn doctor_tries_a_real_sandboxed_run() {
    let env = Env::new();
    let r = env.run(&["doctor"]);
    r.expect(0);
    let out = r.stdout();
    for feature in [
        "user namespace",
        "network namespace",
        "landlock",
        "seccomp user notification",
        "sandboxed run",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok") && l.contains(feature)),
            "{feature}: {out}"
        );
    }
}

/// An HTTP origin on 127.0.0.1 answering every request with `answer(its head)`; returns its
/// port.
fn origin_with(answer: impl Fn(&str) -> &'static str + Send + 'static) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = answer(&String::from_utf8_lossy(&head));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// An HTTP origin on 127.0.0.1 answering every request with `body`; returns its port.
fn origin(body: &'static str) -> u16 {
    origin_with(move |_| body)
}

fn network_config(env: &Env) {
    env.write(
        "cordon.toml",
        "[network]\nallow = [\"upstream.test\"]\nallow_addresses = [\"127.0.0.0/8\"]\n\n\
         [proxy]\nhosts = { \"upstream.test\" = [\"127.0.0.1\"] }\n",
    );
}

#[test]
fn run_reaches_the_network_only_through_its_own_proxy() {
    let env = Env::new();
    let ws = workspace(&env);
    let port = origin("hello through cordon");
    network_config(&env);
    let script = format!(
        "curl -s -m 5 http://upstream.test:{port}/; echo; \
         curl -s -m 5 -o /dev/null -w '%{{http_code}}\\n' http://example.com/; \
         curl -s -m 5 --noproxy '*' http://127.0.0.1:{port}/ || echo direct-refused"
    );
    let r = env.run(&run_in(&ws, &[], &["sh", "-c", &script]));
    r.expect(0);
    assert_eq!(
        r.stdout(),
        "hello through cordon\n403\ndirect-refused\n",
        "{}",
        r.stderr()
    );
    let rec = records(&env);
    let egress: Vec<_> = rec.iter().filter(|r| r["kind"] == "egress").collect();
    assert_eq!(egress.len(), 2, "{rec:?}");
    assert_eq!(egress[0]["decision"]["allow"], true);
    assert_eq!(egress[1]["decision"]["allow"], false);
    assert_eq!(rec.last().unwrap()["kind"], "sandbox");
    // --no-network: not even the proxy.
    let r = env.run(&[
        "--config",
        "cordon.toml",
        "run",
        "--no-network",
        "--workspace",
        &ws,
        "--",
        "sh",
        "-c",
        &format!("curl -s -m 5 http://upstream.test:{port}/ || echo offline"),
    ]);
    assert_eq!(r.stdout(), "offline\n", "{}", r.stderr());
}

#[test]
fn proxy_serves_until_stopped() {
    let env = Env::new();
    let port = origin("hello via cordon proxy");
    network_config(&env);
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listen.local_addr().unwrap().port();
    drop(listen);
    let socket = env.path("proxy.sock");
    let mut child = env
        .command(&[
            "--config",
            "cordon.toml",
            "proxy",
            "--socket",
            socket.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{proxy_port}"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "-x",
            &format!("http://127.0.0.1:{proxy_port}"),
        ])
        .arg(format!("http://upstream.test:{port}/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello via cordon proxy"
    );
    assert!(socket.exists());
    // SIGTERM stops it cleanly and removes the socket.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
    // A non-loopback listener is refused.
    env.run(&[
        "--config",
        "cordon.toml",
        "proxy",
        "--listen",
        "0.0.0.0:3999",
    ])
    .fails(2, "only loopback addresses");
}

/// An origin on 127.0.0.1 that answers `auth-ok` when it received the real deploy token and
/// `auth-bad` otherwise; returns its port.
fn token_origin() -> u16 {
    origin_with(|head| {
        if head
            .to_ascii_lowercase()
            .contains("authorization: bearer real-deploy-token-value")
        {
            "auth-ok"
        } else {
            "auth-bad"
        }
    })
}

const TOKEN_CONFIG: &str = "[network]\nallow = [\"tok.test\"]\nallow_addresses = [\"127.0.0.0/8\"]\n\n\
     [proxy]\nhosts = { \"tok.test\" = [\"127.0.0.1\"] }\n\n\
     [[proxy.tokens]]\nname = \"DEPLOY_TOKEN\"\nhosts = [\"tok.test\"]\n";

fn token_script(port: u16) -> String {
    format!(
        "case \"$DEPLOY_TOKEN\" in cordon-placeholder-*) echo placeholder;; *) echo LEAKED;; esac; \
         curl -s -m 5 -H \"Authorization: Bearer $DEPLOY_TOKEN\" http://tok.test:{port}/"
    )
}

#[test]
fn run_keeps_a_swapped_token_out_of_the_sandbox() {
    let env = Env::new();
    let ws = workspace(&env);
    let port = token_origin();
    env.write("cordon.toml", TOKEN_CONFIG);
    let script = token_script(port);
    let mut cmd = env.command(&run_in(&ws, &[], &["sh", "-c", &script]));
    cmd.env("DEPLOY_TOKEN", "real-deploy-token-value");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "placeholder\nauth-ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(env.log()).unwrap();
    assert!(!log.contains("real-deploy-token-value"));
    // A missing host variable is a clear error, not an empty token.
    let r = env.run(&run_in(&ws, &[], &["true"]));
    r.fails(125, "the host variable DEPLOY_TOKEN is not set");
}

#[test]
fn a_standalone_proxy_publishes_its_placeholders_to_sandboxes() {
    let env = Env::new();
    let ws = workspace(&env);
    let port = token_origin();
    env.write("cordon.toml", TOKEN_CONFIG);
    let socket = env.path("run/proxy.sock");
    let mut proxy = env.command(&[
        "--config",
        "cordon.toml",
        "proxy",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    proxy.env("DEPLOY_TOKEN", "real-deploy-token-value");
    let mut child = proxy.stderr(std::process::Stdio::null()).spawn().unwrap();
    let sidecar = env.path("run/proxy.sock.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(socket.exists() && sidecar.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sidecar).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !std::fs::read_to_string(&sidecar)
            .unwrap()
            .contains("real-deploy-token-value")
    );
    // A sandbox started elsewhere, with no access to the real token, through that proxy.
    let r = env.run(&run_in(
        &ws,
        &["--proxy-socket", socket.to_str().unwrap()],
        &["sh", "-c", &token_script(port)],
    ));
    assert_eq!(r.stdout(), "placeholder\nauth-ok", "{}", r.stderr());
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    assert!(!sidecar.exists(), "the published file outlived the proxy");
}
