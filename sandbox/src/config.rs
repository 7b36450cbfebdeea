//! What a sandbox is made of (workspace, proxy, limits, protected paths) and what one run asks
//! for (argv, cwd, environment, timeout). Defaults are the safe choice; every weakening is an
//! explicit field.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The fixed path at which the workspace appears inside every sandbox.
pub const WORKSPACE: &str = "/workspace";

/// The host device nodes bind-mounted into the sandbox's private `/dev`, and the only files
/// outside the writable directories that landlock lets it write.
pub(crate) const DEVICE_NODES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// The default loopback port of the bridge to the egress proxy inside the sandbox.
pub const DEFAULT_BRIDGE_PORT: u16 = 3128;

/// Resource bounds for one run. Each is enforced by a cgroup where the host delegates one, by an
/// rlimit otherwise; [`crate::Outcome::limits`] says which mechanism applied and whether it was hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the whole process tree is killed.
    pub timeout: Duration,
    /// Bytes of stdout and stderr together passed on before the rest is dropped and marked.
    pub output_bytes: u64,
    /// Memory for the whole tree (cgroup) or each process's address space (rlimit fallback).
    pub memory_bytes: u64,
    /// Processes and threads alive at once.
    pub pids: u64,
    /// CPU seconds per process.
    pub cpu_seconds: u64,
    /// The largest file a process may write.
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` (a tmpfs, so it also counts as memory).
    pub tmp_bytes: u64,
    /// Open file descriptors per process.
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(300),
            output_bytes: 1 << 20,
            memory_bytes: 2 << 30,
            pids: 512,
            cpu_seconds: 600,
            file_size_bytes: 1 << 30,
            tmp_bytes: 256 << 20,
            open_files: 4096,
        }
    }
}

/// Isolation features an operator may explicitly run without. Each one accepted is recorded in
/// the outcome and the audit record as a reduced level; nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downgrades {
    /// Run with a landlock ABI below [`SandboxConfig::min_landlock_abi`], or with none.
    pub landlock: bool,
    /// Run without enforcing protected paths on creation (existing ones stay read-only).
    pub protected_creation: bool,
}

/// A sandbox's fixed shape. Build one [`crate::Sandbox`] from it and run many commands.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Name in audit records (several workspaces may run side by side).
    pub name: String,
    /// The host directory mounted read-write at [`WORKSPACE`].
    pub workspace: PathBuf,
    /// The egress proxy's unix socket. Without one, the sandbox has no network at all.
    pub proxy_socket: Option<PathBuf>,
    /// The loopback port inside the sandbox that forwards to `proxy_socket`.
    pub bridge_port: u16,
    /// A CA bundle for TLS interception, mounted read-only and named in the CA variables.
    pub ca_file: Option<PathBuf>,
    /// Resource bounds.
    pub limits: Limits,
    /// Workspace-relative glob patterns that stay read-only at every depth (the files policy's
    /// protected set): `dir/**`, `name`, or any glob.
    pub protected: Vec<String>,
    /// Extra host paths visible read-only at the same path (toolchains, caches).
    pub read_only_paths: Vec<PathBuf>,
    /// Host variables passed through by name when set (never the whole host environment).
    pub pass_env: Vec<String>,
    /// Variables set for every command.
    pub env: Vec<(String, String)>,
    /// The unprivileged user and group the command runs as inside.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// The lowest landlock ABI accepted without a downgrade.
    pub min_landlock_abi: u8,
    /// Features the operator accepts running without.
    pub downgrades: Downgrades,
}

impl SandboxConfig {
    /// A configuration with safe defaults for `workspace`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        SandboxConfig {
            name: "default".into(),
            workspace: workspace.into(),
            proxy_socket: None,
            bridge_port: DEFAULT_BRIDGE_PORT,
            ca_file: None,
            limits: Limits::default(),
            protected: Vec::new(),
            read_only_paths: Vec::new(),
            pass_env: DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            uid: 1000,
            gid: 1000,
            min_landlock_abi: 6,
            downgrades: Downgrades::default(),
        }
    }
}

/// Host variables that describe the terminal and locale, not the host: safe to pass through.
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
];

/// One command to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// The program and its arguments. A program without `/` is looked up in the sandbox's PATH.
    pub argv: Vec<OsString>,
    /// Working directory, relative to the workspace (no `..`, no absolute path).
    pub cwd: PathBuf,
    /// Extra variables for this run only.
    pub env: Vec<(String, String)>,
    /// Overrides [`Limits::timeout`] for this run.
    pub timeout: Option<Duration>,
    /// Who asked, for the audit record (an MCP client, `cli`).
    pub actor: Option<String>,
    /// Stops the run from another thread.
    pub cancel: Option<crate::Cancel>,
    /// Feeds the command's stdin from another thread; without it stdin is at end-of-file.
    pub stdin: Option<crate::Stdin>,
}

impl Command {
    /// A command run at the workspace root.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: PathBuf::new(),
            env: Vec::new(),
            timeout: None,
            actor: None,
            cancel: None,
            stdin: None,
        }
    }

    /// Sets the working directory (workspace-relative).
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// Adds a variable for this run.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Lets `cancel` stop this run.
    pub fn cancel(mut self, cancel: crate::Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Lets `stdin` feed this run's standard input.
    pub fn stdin(mut self, stdin: crate::Stdin) -> Self {
        self.stdin = Some(stdin);
        self
    }

    /// Sets this run's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}
