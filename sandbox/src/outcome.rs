//! What a run did: how it ended, what it cost, which limits applied and were hit, and the
//! isolation level it ran under. This is what the audit record and the MCP tool result carry.

use std::time::Duration;

use serde::Serialize;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal (the timeout kills with SIGKILL).
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    /// True for exit status 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// How a limit was enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// By cordon itself (timeout, output cap).
    Supervisor,
    /// A cgroup v2 controller for the whole tree.
    Cgroup2,
    /// A cgroup v1 controller for the whole tree.
    Cgroup1,
    /// An rlimit per process.
    Rlimit,
    /// A size-limited tmpfs.
    Tmpfs,
    /// Not enforced on this host (see `cordon doctor`).
    None,
}

/// One resource bound as applied to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedLimit {
    /// "timeout", "output", "memory", "pids", "cpu", "file_size", "tmp", "open_files".
    pub name: &'static str,
    /// The bound (milliseconds for the timeout, bytes or counts otherwise).
    pub value: u64,
    /// How it was enforced.
    pub mechanism: Mechanism,
    /// Whether the run reached it (as far as the mechanism can tell).
    pub hit: bool,
}

/// The isolation a run had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Isolation {
    /// "full", or "reduced" when the operator accepted missing features.
    pub level: &'static str,
    /// Namespaces entered.
    pub namespaces: Vec<&'static str>,
    /// The landlock ABI enforced, if any.
    pub landlock_abi: Option<u8>,
    /// Whether the seccomp filter was installed (always, or the run is refused).
    pub seccomp: bool,
    /// Existing protected paths made read-only.
    pub protected_mounts: usize,
    /// Whether creating protected paths was guarded by the supervisor.
    pub protected_creation: bool,
    /// What the operator accepted running without.
    pub downgrades: Vec<String>,
}

/// The result of one sandboxed run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// How the command ended.
    pub exit: Exit,
    /// Start to exit, including sandbox setup.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Bytes the command wrote to stdout and stderr, including any dropped after the cap.
    pub output_bytes: u64,
    /// Whether output was cut at the cap.
    pub truncated: bool,
    /// Whether the wall-clock timeout killed the tree.
    pub timed_out: bool,
    /// Whether a [`crate::Cancel`] killed the tree.
    pub cancelled: bool,
    /// Each resource bound, how it was enforced, and whether it was hit.
    pub limits: Vec<AppliedLimit>,
    /// The isolation level applied.
    pub isolation: Isolation,
    /// Connections the command made through the bridge to the proxy.
    pub bridge_connections: u64,
    /// Creations of protected paths the supervisor refused.
    pub protected_denials: u64,
    /// The most memory the tree used at once, where a cgroup measured it.
    pub memory_peak_bytes: Option<u64>,
}

impl Outcome {
    /// The names of the limits the run reached.
    pub fn limits_hit(&self) -> Vec<&'static str> {
        self.limits
            .iter()
            .filter(|l| l.hit)
            .map(|l| l.name)
            .collect()
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
