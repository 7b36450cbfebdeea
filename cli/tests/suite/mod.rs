mod audit;
mod mcp;
mod mcp_e2e;
mod mcp_http;
mod policy;
mod run;
mod scan;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch home for one test: its own HOME, config and audit log, nothing from the host.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cordon"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("CORDON_AUDIT_LOG", self.log())
            .stdin(Stdio::null());
        cmd
    }

    /// `cordon --config cordon.toml policy eval --area AREA --input FILE` on `input`.
    pub fn eval(&self, area: &str, input: &serde_json::Value) -> Run {
        let file = self.write("input.json", &input.to_string());
        self.run(&[
            "--config",
            "cordon.toml",
            "policy",
            "eval",
            "--area",
            area,
            "--input",
            file.to_str().unwrap(),
        ])
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run(child.wait_with_output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout()))
    }
    /// Expect exit `code` and a stderr that says `says`.
    #[track_caller]
    pub fn fails(&self, code: i32, says: &str) {
        self.expect(code);
        assert!(
            self.stderr().contains(says),
            "stderr lacks {says:?}:\n{}",
            self.stderr()
        );
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The repository's default policy directory.
pub fn default_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/rego")
}

/// Copy a directory's files (one level deep).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
