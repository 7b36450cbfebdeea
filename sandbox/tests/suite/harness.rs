//! Shared helpers: a workspace in a temp dir, a sandbox over it, runs captured as text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cordon_sandbox::{Command, Outcome, Sandbox, SandboxConfig, Stream};

pub struct Ws {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub outcome: Outcome,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            self.outcome.exit.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.outcome.exit,
            self.stdout,
            self.stderr
        );
        self
    }
}

pub fn protected_defaults() -> Vec<String> {
    [
        ".github/workflows/**",
        ".gitlab-ci.yml",
        ".git/hooks/**",
        ".git/config",
        ".git/worktrees/*/config.worktree",
        "Jenkinsfile",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Ws {
    pub fn new() -> Ws {
        Ws {
            dir: tempfile::Builder::new()
                .prefix("cordon-ws-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn config(&self) -> SandboxConfig {
        let mut c = SandboxConfig::new(self.path());
        c.protected = protected_defaults();
        c.limits.timeout = Duration::from_secs(20);
        c
    }

    pub fn sandbox(&self) -> Sandbox {
        Sandbox::new(self.config()).unwrap()
    }
}

pub fn run(sb: &Sandbox, argv: &[&str]) -> Ran {
    run_cmd(sb, &Command::new(argv.iter().copied()))
}

pub fn sh(sb: &Sandbox, script: &str) -> Ran {
    run(sb, &["/bin/sh", "-c", script])
}

pub fn run_cmd(sb: &Sandbox, cmd: &Command) -> Ran {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let outcome = sb
        .run(cmd, &mut |s, b| match s {
            Stream::Stdout => out.extend_from_slice(b),
            Stream::Stderr => err.extend_from_slice(b),
        })
        .unwrap();
    Ran {
        outcome,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs `script` and writes the run's audit record to a log in a temp dir; returns both.
pub fn audited(sb: &Sandbox, script: &str) -> (Ran, serde_json::Value) {
    let cmd = Command::new(["/bin/sh", "-c", script]);
    let ran = run_cmd(sb, &cmd);
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("audit.jsonl");
    let log =
        cordon_audit::AuditLog::open(&log_path, cordon_audit::AuditOptions::default()).unwrap();
    log.append(cordon_sandbox::audit_event(
        "test",
        &cmd,
        &ran.outcome,
        &|s| s.to_owned(),
    ))
    .unwrap();
    drop(log);
    let records = cordon_audit::read::records(&log_path, false).unwrap();
    let record = records
        .into_iter()
        .find(|r| r["kind"] == "sandbox")
        .expect("a sandbox record");
    let event = record;
    assert_eq!(event["action"], "run");
    assert_eq!(event["detail"]["level"], "full", "{event}");
    assert_eq!(event["detail"]["isolation"]["seccomp"], true);
    assert!(
        event["detail"]["isolation"]["landlock_abi"]
            .as_u64()
            .unwrap()
            >= 6
    );
    assert_eq!(event["detail"]["argv"][2], script);
    (ran, event)
}

/// An outer bound the test owns: this test process (nextest runs one test per process) moves
/// into a fresh cgroup with `pids.max` and a memory limit, so a sandbox bug can fail the test but
/// not exhaust the machine. Moves back and removes the cgroup on drop.
pub struct OuterBound {
    dirs: Vec<(PathBuf, PathBuf)>,
}

fn v1_mount(controller: &str) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let fstype = r.next()?;
        let opts = r.nth(1)?;
        (fstype == "cgroup" && opts.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(point))
    })
}

fn own_cgroup(controller: &str) -> Option<String> {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            p.next();
            let c = p.next()?;
            let path = p.next()?;
            if controller.is_empty() {
                c.is_empty()
            } else {
                c.split(',').any(|x| x == controller)
            }
            .then(|| path.to_owned())
        })
}

impl OuterBound {
    pub fn new(pids: u64, memory: u64) -> OuterBound {
        let me = std::process::id().to_string();
        let name = format!("cordon-test-outer-{me}");
        let mut dirs = Vec::new();
        // cgroup v2 with both controllers, else v1 pids + memory.
        for (controller, file, value) in [
            ("pids", "pids.max", pids.to_string()),
            ("memory", "memory.limit_in_bytes", memory.to_string()),
        ] {
            let mount = v1_mount(controller).unwrap_or_else(|| {
                panic!("no cgroup {controller} hierarchy: refusing to run an exhaustion test without an outer bound")
            });
            let own = own_cgroup(controller).unwrap();
            let parent = mount.join(own.trim_start_matches('/'));
            let dir = parent.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file), &value).unwrap();
            std::fs::write(dir.join("cgroup.procs"), &me).unwrap();
            dirs.push((parent, dir));
        }
        OuterBound { dirs }
    }
}

impl Drop for OuterBound {
    fn drop(&mut self) {
        let me = std::process::id().to_string();
        for (parent, dir) in &self.dirs {
            let _ = std::fs::write(parent.join("cgroup.procs"), &me);
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Whether any host process has `needle` in its command line.
pub fn host_process_with(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}
