//! [`Sandbox`]: checked once per workspace, then [`Sandbox::run`] for each command.
//!
//! Creating namespaces, mounting the root, attaching a cgroup and installing landlock and
//! seccomp take a few milliseconds of kernel time, most of it fixed costs (a v1 cgroup attach
//! alone waits for an RCU grace period). A dedicated thread therefore keeps one sandbox prepared
//! ahead of time, up to the point where only the command is missing, and prepares the next as
//! soon as one is taken. A run sends its command to the waiting sandbox, which changes
//! directory, starts it, and from then on behaves exactly like a sandbox built on demand. A
//! prepared sandbox is discarded when the workspace's protected paths changed since it was built.
//!
//! The warm sandbox's parent thread is the warmer, which lives as long as the [`Sandbox`]:
//! `PR_SET_PDEATHSIG` follows the thread that cloned, so a sandbox cloned from a short-lived
//! thread would be killed when that thread ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cgroup;
use crate::config::{Command, SandboxConfig, WORKSPACE};
use crate::outcome::{AppliedLimit, Exit, Isolation, Mechanism, Outcome};
use crate::plan::{self, HostFacts};
use crate::prepare::{self, Inner, NAMESPACES, Prepared};
use crate::protect::Protected;
use crate::seccomp::Creation;
use crate::stage::Stage;
use crate::{SandboxError, landlock_rules, probe};

/// How long a run waits for the warmer before giving up.
const PREPARE_WAIT: Duration = Duration::from_secs(30);

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// A sandbox for one workspace. Each [`Sandbox::run`] gets a fresh set of namespaces, so runs
/// share nothing but the workspace. `Send + Sync`: runs may go on from several threads at once.
#[derive(Debug)]
pub struct Sandbox {
    inner: Arc<Inner>,
    warm: Arc<Warm>,
    warmer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Warm {
    slot: Mutex<State>,
    changed: Condvar,
}

/// The warmer's shared state.
#[derive(Debug)]
struct State {
    slot: Slot,
    /// Whether a sandbox should be prepared now: at start, after a run, or when a run waits.
    /// Not while a run is going on, so that preparing does not compete with it for the CPU.
    wanted: bool,
    /// Cgroups of finished runs, removed by the warmer off the run's path (removing a v1
    /// cgroup waits for the kernel to let go of its exited tasks).
    graveyard: Vec<cgroup::RunCgroup>,
}

enum Slot {
    Empty,
    Ready(Box<Prepared>),
    Failed(SandboxError),
    Closed,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::Empty => "Empty",
            Slot::Ready(_) => "Ready",
            Slot::Failed(_) => "Failed",
            Slot::Closed => "Closed",
        })
    }
}

impl Warm {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The warmer thread: keeps the slot filled until the sandbox is dropped.
    fn run(&self, inner: &Inner) {
        loop {
            let graves = {
                let mut state = self.lock();
                while !matches!(state.slot, Slot::Closed)
                    && (matches!(state.slot, Slot::Ready(_) | Slot::Failed(_)) || !state.wanted)
                {
                    if !state.graveyard.is_empty() {
                        break;
                    }
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if matches!(state.slot, Slot::Closed) {
                    return;
                }
                std::mem::take(&mut state.graveyard)
            };
            drop(graves);
            {
                let state = self.lock();
                if !state.wanted || !matches!(state.slot, Slot::Empty) {
                    continue;
                }
            }
            let prepared = inner.prepare();
            let mut state = self.lock();
            if matches!(state.slot, Slot::Closed) {
                return;
            }
            state.wanted = false;
            state.slot = match prepared {
                Ok(p) => Slot::Ready(Box::new(p)),
                Err(e) => {
                    tracing::warn!(error = %e, "preparing a sandbox failed");
                    Slot::Failed(e)
                }
            };
            self.changed.notify_all();
        }
    }

    /// Asks for the next sandbox to be prepared (after a run), and hands over a finished run's
    /// cgroup for removal.
    fn refill(&self, grave: Option<cgroup::RunCgroup>) {
        let mut state = self.lock();
        state.wanted = true;
        state.graveyard.extend(grave);
        self.changed.notify_all();
    }

    /// Takes the prepared sandbox, waiting for the warmer when there is none yet.
    fn take(&self) -> Result<Prepared, SandboxError> {
        let deadline = Instant::now() + PREPARE_WAIT;
        let mut state = self.lock();
        loop {
            match std::mem::replace(&mut state.slot, Slot::Empty) {
                Slot::Ready(p) => {
                    return Ok(*p);
                }
                Slot::Failed(e) => {
                    state.wanted = true;
                    self.changed.notify_all();
                    return Err(e);
                }
                Slot::Closed => {
                    state.slot = Slot::Closed;
                    return Err(SandboxError::Invalid("the sandbox is shutting down".into()));
                }
                Slot::Empty => {
                    state.wanted = true;
                    self.changed.notify_all();
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SandboxError::host(
                            "waiting for a prepared sandbox",
                            std::io::Error::from(std::io::ErrorKind::TimedOut),
                        ));
                    }
                    state = self
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        {
            let mut state = self.warm.lock();
            // Dropping a prepared sandbox kills and reaps it.
            state.slot = Slot::Closed;
            state.graveyard.clear();
            self.warm.changed.notify_all();
        }
        if let Some(t) = self.warmer.take() {
            let _ = t.join();
        }
    }
}

impl Sandbox {
    /// Checks the host and the configuration, and refuses when a required isolation feature is
    /// missing and the operator has not accepted running without it.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let workspace = config
            .workspace
            .canonicalize()
            .map_err(|e| SandboxError::Workspace {
                path: config.workspace.clone(),
                reason: e.to_string(),
            })?;
        if !workspace.is_dir() {
            return Err(SandboxError::Workspace {
                path: config.workspace.clone(),
                reason: "not a directory".into(),
            });
        }
        if let Some(sock) = &config.proxy_socket
            && sock.as_os_str().is_empty()
        {
            return Err(SandboxError::Invalid(
                "the proxy socket path is empty".into(),
            ));
        }
        let protected = Protected::new(&config.protected)?;
        probe::namespaces().map_err(|(feature, reason)| SandboxError::Unsupported {
            feature,
            reason,
            hint: "none: namespaces cannot be downgraded",
        })?;

        let mut downgrades = Vec::new();
        let abi = landlock_rules::kernel_abi();
        let landlock_abi = if abi >= config.min_landlock_abi && abi > 0 {
            Some(abi)
        } else if config.downgrades.landlock {
            let why = if abi == 0 {
                "landlock unavailable".to_owned()
            } else {
                format!(
                    "landlock ABI {abi} below the minimum {}",
                    config.min_landlock_abi
                )
            };
            tracing::warn!(reason = %why, "running with a weaker filesystem layer, as the operator allowed");
            downgrades.push(why);
            (abi > 0).then_some(abi)
        } else {
            return Err(SandboxError::Unsupported {
                feature: "landlock",
                reason: if abi == 0 {
                    "the kernel has no landlock (or it is not in the active LSMs)".into()
                } else {
                    format!(
                        "ABI {abi} is below the configured minimum {}",
                        config.min_landlock_abi
                    )
                },
                hint: "--allow-weaker landlock",
            });
        };

        let creation = if protected.is_empty() {
            Creation::Allow
        } else if probe::seccomp_user_notif() {
            Creation::Notify
        } else if config.downgrades.protected_creation {
            tracing::warn!(
                "protected paths are guarded only where they exist, as the operator allowed"
            );
            downgrades.push("protected paths not guarded on creation".into());
            Creation::Allow
        } else {
            return Err(SandboxError::Unsupported {
                feature: "seccomp user notification",
                reason:
                    "the kernel cannot hand system calls to a supervisor (SECCOMP_RET_USER_NOTIF)"
                        .into(),
                hint: "--allow-weaker protected-creation",
            });
        };
        let host = HostFacts::read();
        let stage = Stage::create(config.uid, config.gid)?;
        let inner = Arc::new(Inner {
            cgroups: cgroup::available(),
            workspace,
            protected,
            host,
            landlock_abi,
            creation,
            downgrades,
            stage,
            config,
        });
        let warm = Arc::new(Warm {
            slot: Mutex::new(State {
                slot: Slot::Empty,
                wanted: true,
                graveyard: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let warmer = {
            let (inner, warm) = (Arc::clone(&inner), Arc::clone(&warm));
            std::thread::Builder::new()
                .name("cordon-warmer".into())
                .spawn(move || warm.run(&inner))
                .map_err(|e| SandboxError::host("starting the sandbox warmer thread", e))?
        };
        Ok(Sandbox {
            inner,
            warm,
            warmer: Some(warmer),
        })
    }

    /// The configuration this sandbox was built from.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The workspace as a canonical host path.
    pub fn workspace(&self) -> &Path {
        &self.inner.workspace
    }

    /// Runs `cmd`, passing its output to `sink` as it arrives, and blocks until the whole
    /// process tree is gone.
    pub fn run(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Outcome, SandboxError> {
        let started = Instant::now();
        let inner = &*self.inner;
        let Some(program) = cmd.argv.first() else {
            return Err(SandboxError::Invalid("the command is empty".into()));
        };
        let rel_cwd = plan::relative(&cmd.cwd, "working directory")?;
        if !inner.workspace.join(&rel_cwd).is_dir() {
            return Err(SandboxError::Invalid(format!(
                "working directory {} is not a directory in the workspace",
                rel_cwd.display()
            )));
        }
        let cwd = if rel_cwd.as_os_str().is_empty() {
            PathBuf::from(WORKSPACE)
        } else {
            Path::new(WORKSPACE).join(&rel_cwd)
        };
        let env = plan::environment(&inner.config, cmd, &cwd)?;
        let candidates = plan::exec_candidates(program, &env)?;
        let message = plan::message(&cwd, &candidates, cmd, &env)?;

        // A prepared sandbox is only good if the protected paths it mounted are still all there
        // are; the workspace may have changed since.
        let current = inner.protected.scan(&inner.workspace)?;
        let mut prepared = self.warm.take()?;
        if prepared.protected != current {
            drop(prepared);
            prepared = self.warm.take()?;
            if prepared.protected != inner.protected.scan(&inner.workspace)? {
                return Err(SandboxError::Workspace {
                    path: inner.workspace.clone(),
                    reason: "protected paths keep changing while a sandbox is prepared".into(),
                });
            }
        }

        let sent = prepared
            .cmd_w
            .take()
            .map(std::fs::File::from)
            .map(|mut f| std::io::Write::write_all(&mut f, &message));
        if let Some(Err(e)) = sent {
            return Err(SandboxError::host("sending the command to the sandbox", e));
        }
        if let Some(failure) = prepare::read_failure(&prepared.err_r) {
            return Err(prepare::describe(failure, &[], &[], Some(program)));
        }
        // The command's stdin: the caller's slot, or closed (end-of-file) at once.
        match (&cmd.stdin, prepared.stdin_w.take()) {
            (Some(slot), Some(w)) => slot.open(w),
            (_, w) => drop(w),
        }

        let limits = &inner.config.limits;
        let timeout = cmd.timeout.unwrap_or(limits.timeout);
        let (Some(out_r), Some(err_out_r)) = (prepared.out_r.take(), prepared.err_out_r.take())
        else {
            return Err(SandboxError::Invalid(
                "a prepared sandbox was used twice".into(),
            ));
        };
        let watched = prepare::supervise(
            &prepared.child,
            out_r,
            err_out_r,
            started + timeout,
            limits.output_bytes,
            cmd.cancel.as_ref(),
            sink,
        );
        if let Some(slot) = &cmd.stdin {
            slot.finish();
        }
        let (_, rusage) = prepared.child.reap();
        prepared.reaped = true;
        let exit = prepare::command_status(&prepared.status_r);
        let bridge_connections = prepared.bridge.as_ref().map_or(0, |b| b.connections());
        drop(prepared.bridge.take());
        let protected_denials = prepared
            .supervisor
            .take()
            .map_or(0, crate::notify::Supervisor::stop);
        let cgroup = prepared.cgroup.take();
        let usage = cgroup
            .as_ref()
            .map(cgroup::RunCgroup::usage)
            .unwrap_or_default();
        let mechanism = match cgroup.as_ref().map(|c| c.version) {
            Some(cgroup::Version::V2) => Mechanism::Cgroup2,
            Some(cgroup::Version::V1) => Mechanism::Cgroup1,
            None => Mechanism::Rlimit,
        };
        let protected_mounts = prepared.protected.len();
        drop(prepared);
        self.warm.refill(cgroup);

        let signal = match exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        };
        let cpu_used = rusage.map_or(0, |r| r.ru_utime.tv_sec + r.ru_stime.tv_sec);
        let pids_mechanism = if mechanism == Mechanism::Rlimit && inner.host.uid == 0 {
            // RLIMIT_NPROC does not bind processes whose real uid is host root.
            Mechanism::None
        } else {
            mechanism
        };
        let limit = |name, value, mechanism, hit| AppliedLimit {
            name,
            value,
            mechanism,
            hit,
        };
        let limits_applied = vec![
            limit(
                "timeout",
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                Mechanism::Supervisor,
                watched.timed_out,
            ),
            limit(
                "output",
                limits.output_bytes,
                Mechanism::Supervisor,
                watched.truncated,
            ),
            limit("memory", limits.memory_bytes, mechanism, usage.memory_hit),
            limit("pids", limits.pids, pids_mechanism, usage.pids_hit),
            limit(
                "cpu",
                limits.cpu_seconds,
                Mechanism::Rlimit,
                signal == Some(libc::SIGXCPU)
                    || u64::try_from(cpu_used).unwrap_or(0) >= limits.cpu_seconds,
            ),
            limit(
                "file_size",
                limits.file_size_bytes,
                Mechanism::Rlimit,
                signal == Some(libc::SIGXFSZ),
            ),
            limit("tmp", limits.tmp_bytes, Mechanism::Tmpfs, false),
            limit("open_files", limits.open_files, Mechanism::Rlimit, false),
        ];
        Ok(Outcome {
            exit,
            duration: started.elapsed(),
            output_bytes: watched.bytes,
            truncated: watched.truncated,
            timed_out: watched.timed_out,
            cancelled: watched.cancelled,
            limits: limits_applied,
            isolation: Isolation {
                level: if inner.downgrades.is_empty() {
                    "full"
                } else {
                    "reduced"
                },
                namespaces: NAMESPACES.to_vec(),
                landlock_abi: inner.landlock_abi,
                seccomp: true,
                protected_mounts,
                protected_creation: inner.creation == Creation::Notify,
                downgrades: inner.downgrades.clone(),
            },
            bridge_connections,
            protected_denials,
            memory_peak_bytes: usage.memory_peak,
        })
    }
}
