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
