//! Start-to-exit of `true`: bare fork+exec, cordon's sandbox, and bubblewrap, interleaved in one
//! process and printed as medians and ratios; then the cost the bridge adds per connection.
//!
//! Run: `cargo bench -p cordon-sandbox --bench start` (as root or with unprivileged user
//! namespaces; `bwrap` from Debian's bubblewrap package). `CORDON_BENCH_N` sets the rounds.
#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use cordon_sandbox::{Command, Sandbox, SandboxConfig, Stream};

fn bare_fork_exec() {
    let path = CString::new("/bin/true").unwrap();
    let argv = [path.as_ptr(), std::ptr::null()];
    // SAFETY: the child only calls execv and _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

fn bwrap() -> bool {
    std::process::Command::new("bwrap")
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::var("CORDON_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    std::fs::write(ws.path().join(".git/config"), "[core]\n").unwrap();
    let mut config = SandboxConfig::new(ws.path());
    config.protected = vec![
        ".git/hooks/**".into(),
        ".git/config".into(),
        ".github/workflows/**".into(),
    ];
    let sb = Sandbox::new(config).unwrap();
    let cmd = Command::new(["/bin/true"]);
    let have_bwrap = bwrap();

    let (mut bare, mut sandboxed, mut bw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        bare_fork_exec();
        sb.run(&cmd, &mut |_, _| {}).unwrap();
    }
    for _ in 0..rounds {
        let t = Instant::now();
        bare_fork_exec();
        bare.push(t.elapsed());
        let t = Instant::now();
        let o = sb.run(&cmd, &mut |_: Stream, _: &[u8]| {}).unwrap();
        sandboxed.push(t.elapsed());
        assert!(o.exit.success());
        if have_bwrap {
            let t = Instant::now();
            bwrap();
            bw.push(t.elapsed());
        }
    }
    let (b50, s50) = (median(&mut bare), median(&mut sandboxed));
    println!("start-to-exit of /bin/true, {rounds} interleaved rounds (median / p90):");
    println!(
        "  bare fork+exec     {:7.3} ms / {:7.3} ms",
        ms(b50),
        ms(p90(&mut bare))
    );
    println!(
        "  cordon sandbox     {:7.3} ms / {:7.3} ms",
        ms(s50),
        ms(p90(&mut sandboxed))
    );
    if have_bwrap {
        let w50 = median(&mut bw);
        println!(
            "  bwrap --unshare-all {:6.3} ms / {:7.3} ms",
            ms(w50),
            ms(p90(&mut bw))
        );
        println!(
            "ratios: sandbox / bare = {:.2}x (goal <= 2x); bwrap / sandbox = {:.2}x (goal >= 2x)",
            s50.as_secs_f64() / b50.as_secs_f64(),
            w50.as_secs_f64() / s50.as_secs_f64()
        );
    } else {
        println!(
            "ratios: sandbox / bare = {:.2}x (goal <= 2x); bwrap not installed",
            s50.as_secs_f64() / b50.as_secs_f64()
        );
    }

    // Back to back, each run waits for its sandbox to be prepared: the cold cost.
    let mut cold = Vec::new();
    for _ in 0..rounds.min(100) {
        let t = Instant::now();
        sb.run(&cmd, &mut |_, _| {}).unwrap();
        cold.push(t.elapsed());
    }
    let c50 = median(&mut cold);
    println!(
        "back to back (no pause, so each run waits for a sandbox to be prepared): {:.3} ms median, {:.2}x bare",
        ms(c50),
        c50.as_secs_f64() / b50.as_secs_f64()
    );

    bridge(&ws);
}

/// Per-connection cost: connect + 1-byte echo, from inside the sandbox through the bridge,
/// against the same client on the host talking to the unix socket directly.
fn bridge(ws: &tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("echo.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                while c.read(&mut b).unwrap_or(0) == 1 {
                    let _ = c.write_all(&b);
                }
            });
        }
    });
    let n = 500;
    let client = |target: &str| {
        format!(
            "import socket, time\nts = []\nfor _ in range({n}):\n t = time.perf_counter()\n s = socket.socket({target})\n s.send(b\"x\"); s.recv(1); s.close()\n ts.append(time.perf_counter() - t)\nts.sort(); print(ts[len(ts)//2] * 1e6)"
        )
    };
    let mut config = SandboxConfig::new(ws.path());
    config.proxy_socket = Some(sock.clone());
    let sb = Sandbox::new(config).unwrap();
    let inside = client("socket.AF_INET); s.connect((\"127.0.0.1\", 3128)");
    let mut out = Vec::new();
    sb.run(&Command::new(["python3", "-c", &inside]), &mut |s, b| {
        if s == Stream::Stdout {
            out.extend_from_slice(b)
        }
    })
    .unwrap();
    let through: f64 = String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    let direct_code = client(&format!(
        "socket.AF_UNIX); s.connect(\"{}\"",
        sock.display()
    ));
    let direct = std::process::Command::new("python3")
        .args(["-c", &direct_code])
        .output()
        .unwrap();
    if !direct.status.success() {
        println!(
            "direct client failed: {}",
            String::from_utf8_lossy(&direct.stderr)
        );
    }
    let direct: f64 = String::from_utf8_lossy(&direct.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    println!("connect + 1-byte echo, median of {n}:");
    println!("  host client, unix socket directly  {direct:7.1} us");
    println!("  sandbox client, through the bridge {through:7.1} us");
    println!(
        "  the bridge adds                    {:7.1} us per connection",
        through - direct
    );
}
