//! [`Sandbox`]: prepared once per workspace, then [`Sandbox::run`] for each command. The
//! parent side of a run: plan, clone, maps and cgroups, the go signal, then supervision of the
//! output, the timeout and the exit.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::cgroup::{self, RunCgroup};
use crate::child::{self, ChildFds, ChildPlan, Stage as ChildStage};
use crate::config::{Command, SandboxConfig, WORKSPACE};
use crate::outcome::{AppliedLimit, Exit, Isolation, Mechanism, Outcome};
use crate::plan::{self, HostFacts, Strings};
use crate::protect::Protected;
use crate::seccomp::{self, Creation};
use crate::stage::Stage;
use crate::{SandboxError, landlock_rules, notify, probe};

/// The namespaces every run enters.
pub const NAMESPACES: &[&str] = &["user", "mount", "pid", "ipc", "uts", "net", "cgroup"];

const CLONE_FLAGS: c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// A sandbox for one workspace. Cheap to keep; each [`Sandbox::run`] builds a fresh set of
/// namespaces, so runs share nothing but the workspace.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    workspace: PathBuf,
    protected: Protected,
    host: HostFacts,
    landlock_abi: Option<u8>,
    creation: Creation,
    cgroups: Option<cgroup::Version>,
    downgrades: Vec<String>,
    stage: Stage,
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
        Ok(Sandbox {
            cgroups: cgroup::available(),
            workspace,
            protected,
            host,
            landlock_abi,
            creation,
            downgrades,
            stage,
            config,
        })
    }

    /// The configuration this sandbox was built from.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The workspace as a canonical host path.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Runs `cmd`, passing its output to `sink` as it arrives, and blocks until the whole
    /// process tree is gone.
    ///
    /// The calling thread must live until this returns: the sandbox dies with the thread that
    /// started it (`PR_SET_PDEATHSIG` follows threads), which is what keeps a crashed caller
    /// from leaving it behind.
    pub fn run(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Outcome, SandboxError> {
        let started = Instant::now();
        let Some(program) = cmd.argv.first() else {
            return Err(SandboxError::Invalid("the command is empty".into()));
        };
        let rel_cwd = plan::relative(&cmd.cwd, "working directory")?;
        let cwd = if rel_cwd.as_os_str().is_empty() {
            PathBuf::from(WORKSPACE)
        } else {
            Path::new(WORKSPACE).join(&rel_cwd)
        };
        if !self.workspace.join(&rel_cwd).is_dir() {
            return Err(SandboxError::Invalid(format!(
                "working directory {} is not a directory in the workspace",
                rel_cwd.display()
            )));
        }
        let protected = self.protected.scan(&self.workspace)?;
        let env = plan::environment(&self.config, cmd, &cwd)?;
        let strings = Strings::new(cmd, &env)?;
        let root = plan::root_steps(&self.config, &self.workspace, &self.stage, &protected)?;
        let (late_steps, late_what) = plan::late_steps()?;
        let landlock = match self.landlock_abi {
            Some(abi) => Some(landlock_rules::plan(abi, self.bridge_port())?),
            None => None,
        };
        let limits = &self.config.limits;
        let cgroup = if self.cgroups.is_some() {
            RunCgroup::create(limits.memory_bytes, limits.pids)
        } else {
            None
        };
        let rlimits = self.rlimits(cgroup.is_some());

        let mut child_plan = ChildPlan {
            steps: root.steps,
            new_root: plan::cstr(self.stage.root().as_os_str().as_encoded_bytes(), "stage")?,
            late_steps,
            hostname: plan::cstr("cordon", "")?,
            bridge_port: self.bridge_port(),
            cwd: plan::cstr(cwd.as_os_str().as_encoded_bytes(), "working directory")?,
            landlock_fd: landlock.as_ref().map(|l| l.fd.as_raw_fd()),
            landlock_rules: landlock
                .as_ref()
                .map(|l| l.rules_copy())
                .unwrap_or_default(),
            rlimits,
            cap_last: self.host.cap_last,
            setgroups: self.host.uid == 0,
            uid: self.config.uid,
            gid: self.config.gid,
            seccomp: seccomp::program(self.creation),
            seccomp_listener: self.creation == Creation::Notify,
            exec_candidates: plan::exec_candidates(program, &env)?,
            argv: Vec::new(),
            envp: Vec::new(),
        };
        strings.pointers(&mut child_plan);

        let pipes = Pipes::new()?;
        let child = spawn(&child_plan, &pipes)?;
        // From here on the child holds its ends; the parent keeps only its own.
        let Pipes {
            sync_r,
            sync_w,
            err_r,
            err_w,
            pass_parent,
            pass_child,
            stdin,
            out_r,
            out_w,
            err_out_r,
            err_out_w,
            status_r,
            status_w,
        } = pipes;
        drop((sync_r, err_w, pass_child, stdin, out_w, err_out_w, status_w));

        let setup = self.release(&child, cgroup.as_ref(), &sync_w);
        drop(sync_w);
        if let Err(e) = setup {
            child.kill();
            child.reap();
            return Err(e);
        }
        if let Some(failure) = read_failure(&err_r) {
            child.reap();
            return Err(self.describe(failure, &root.what, &late_what, program));
        }
        drop(err_r);
        drop(landlock);

        let (bridge_fd, notify_fd) = receive_fds(&pass_parent);
        let bridge = match (bridge_fd, &self.config.proxy_socket) {
            (Some(fd), Some(target)) => Some(
                Bridge::start(fd, target.clone())
                    .map_err(|e| SandboxError::host("starting the proxy bridge", e))?,
            ),
            _ => None,
        };
        let supervisor = match notify_fd {
            Some(fd) => Some(notify::Supervisor::start(fd, self.protected.clone())?),
            None => {
                if self.creation == Creation::Notify {
                    child.kill();
                    child.reap();
                    return Err(SandboxError::host(
                        "receiving the seccomp listener",
                        io::Error::other("the child sent none"),
                    ));
                }
                None
            }
        };

        let timeout = cmd.timeout.unwrap_or(limits.timeout);
        let watched = supervise(
            &child,
            out_r,
            err_out_r,
            started + timeout,
            limits.output_bytes,
            sink,
        );
        let (_, rusage) = child.reap();
        let exit = command_status(&status_r);
        let bridge_connections = bridge.as_ref().map_or(0, Bridge::connections);
        drop(bridge);
        let protected_denials = supervisor.map_or(0, notify::Supervisor::stop);
        let usage = cgroup.as_ref().map(RunCgroup::usage).unwrap_or_default();
        let mechanism = match cgroup.as_ref().map(|c| c.version) {
            Some(cgroup::Version::V2) => Mechanism::Cgroup2,
            Some(cgroup::Version::V1) => Mechanism::Cgroup1,
            None => Mechanism::Rlimit,
        };
        drop(cgroup);

        let signal = match exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        };
        let cpu_used = rusage.map_or(0, |r| r.ru_utime.tv_sec + r.ru_stime.tv_sec);
        let pids_mechanism = if mechanism == Mechanism::Rlimit && self.host.uid == 0 {
            // RLIMIT_NPROC does not bind processes whose real uid is host root.
            Mechanism::None
        } else {
            mechanism
        };
        let limits_applied = vec![
            AppliedLimit {
                name: "timeout",
                value: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                mechanism: Mechanism::Supervisor,
                hit: watched.timed_out,
            },
            AppliedLimit {
                name: "output",
                value: limits.output_bytes,
                mechanism: Mechanism::Supervisor,
                hit: watched.truncated,
            },
            AppliedLimit {
                name: "memory",
                value: limits.memory_bytes,
                mechanism,
                hit: usage.memory_hit,
            },
            AppliedLimit {
                name: "pids",
                value: limits.pids,
                mechanism: pids_mechanism,
                hit: usage.pids_hit,
            },
            AppliedLimit {
                name: "cpu",
                value: limits.cpu_seconds,
                mechanism: Mechanism::Rlimit,
                hit: signal == Some(libc::SIGXCPU)
                    || u64::try_from(cpu_used).unwrap_or(0) >= limits.cpu_seconds,
            },
            AppliedLimit {
                name: "file_size",
                value: limits.file_size_bytes,
                mechanism: Mechanism::Rlimit,
                hit: signal == Some(libc::SIGXFSZ),
            },
            AppliedLimit {
                name: "tmp",
                value: limits.tmp_bytes,
                mechanism: Mechanism::Tmpfs,
                hit: false,
            },
            AppliedLimit {
                name: "open_files",
                value: limits.open_files,
                mechanism: Mechanism::Rlimit,
                hit: false,
            },
        ];
        Ok(Outcome {
            exit,
            duration: started.elapsed(),
            output_bytes: watched.bytes,
            truncated: watched.truncated,
            timed_out: watched.timed_out,
            limits: limits_applied,
            isolation: Isolation {
                level: if self.downgrades.is_empty() {
                    "full"
                } else {
                    "reduced"
                },
                namespaces: NAMESPACES.to_vec(),
                landlock_abi: self.landlock_abi,
                seccomp: true,
                protected_mounts: protected.len(),
                protected_creation: self.creation == Creation::Notify,
                downgrades: self.downgrades.clone(),
            },
            bridge_connections,
            protected_denials,
            memory_peak_bytes: usage.memory_peak,
        })
    }

    fn bridge_port(&self) -> Option<u16> {
        self.config
            .proxy_socket
            .as_ref()
            .map(|_| self.config.bridge_port)
    }

    fn rlimits(&self, cgroup: bool) -> Vec<(c_int, u64)> {
        let l = &self.config.limits;
        let mut r = vec![
            (libc::RLIMIT_CPU as c_int, l.cpu_seconds),
            (libc::RLIMIT_FSIZE as c_int, l.file_size_bytes),
            (libc::RLIMIT_NOFILE as c_int, l.open_files),
            (libc::RLIMIT_CORE as c_int, 0),
        ];
        if !cgroup {
            r.push((libc::RLIMIT_AS as c_int, l.memory_bytes));
            r.push((libc::RLIMIT_NPROC as c_int, l.pids));
        }
        r
    }

    /// Writes the id maps, joins the cgroup and lets the child go.
    fn release(
        &self,
        child: &Child,
        cgroup: Option<&RunCgroup>,
        sync_w: &OwnedFd,
    ) -> Result<(), SandboxError> {
        let proc = PathBuf::from(format!("/proc/{}", child.pid));
        let write = |name: &str, text: String| {
            std::fs::write(proc.join(name), text)
                .map_err(|e| SandboxError::host(format!("writing the sandbox's {name}"), e))
        };
        write(
            "uid_map",
            format!("{} {} 1\n", self.config.uid, self.host.uid),
        )?;
        if self.host.uid != 0 {
            write("setgroups", "deny".into())?;
        }
        write(
            "gid_map",
            format!("{} {} 1\n", self.config.gid, self.host.gid),
        )?;
        if let Some(cg) = cgroup {
            cg.add(child.pid)
                .map_err(|e| SandboxError::host("moving the sandbox into its cgroup", e))?;
        }
        let go = [1u8];
        // SAFETY: writing one byte from a valid buffer to our end of the sync pipe.
        let n = unsafe { libc::write(sync_w.as_raw_fd(), go.as_ptr().cast(), 1) };
        if n != 1 {
            return Err(SandboxError::host(
                "releasing the sandbox",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn describe(
        &self,
        (stage, index, errno): (u32, u32, i32),
        what: &[String],
        late_what: &[String],
        program: &std::ffi::OsStr,
    ) -> SandboxError {
        let source = io::Error::from_raw_os_error(errno);
        let index = index as usize;
        let stage = ChildStage::from_u32(stage);
        let text = match stage {
            Some(ChildStage::Exec) => {
                return SandboxError::Exec {
                    program: program.to_string_lossy().into_owned(),
                    source,
                };
            }
            Some(ChildStage::Step) => what.get(index).cloned().unwrap_or_default(),
            Some(ChildStage::LateStep) => late_what.get(index).cloned().unwrap_or_default(),
            Some(ChildStage::Landlock) => "applying the landlock rules".into(),
            Some(ChildStage::Seccomp) => "installing the seccomp filter".into(),
            Some(s) => format!("{s:?}").to_lowercase(),
            None => "setting up".into(),
        };
        SandboxError::Setup {
            stage: text,
            source,
        }
    }
}

impl landlock_rules::Plan {
    fn rules_copy(&self) -> Vec<child::PathRule> {
        self.rules
            .iter()
            .map(|r| child::PathRule {
                path: r.path.clone(),
                access: r.access,
            })
            .collect()
    }
}

/// The pipes and socket pair between parent and child.
struct Pipes {
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    pass_parent: OwnedFd,
    pass_child: OwnedFd,
    stdin: OwnedFd,
    out_r: OwnedFd,
    out_w: OwnedFd,
    err_out_r: OwnedFd,
    err_out_w: OwnedFd,
    status_r: OwnedFd,
    status_w: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::host(
            "creating a pipe",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Pipes {
    fn new() -> Result<Pipes, SandboxError> {
        let (sync_r, sync_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_out_r, err_out_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        let mut pair = [0 as RawFd; 2];
        // SAFETY: `pair` has room for the two descriptors socketpair writes.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(SandboxError::host(
                "creating a socket pair",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: socketpair succeeded; the descriptors are ours.
        let (pass_parent, pass_child) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let stdin = std::fs::File::open("/dev/null")
            .map_err(|e| SandboxError::host("opening /dev/null", e))?
            .into();
        Ok(Pipes {
            sync_r,
            sync_w,
            err_r,
            err_w,
            pass_parent,
            pass_child,
            stdin,
            out_r,
            out_w,
            err_out_r,
            err_out_w,
            status_r,
            status_w,
        })
    }
}

/// The cloned child: pid in the parent's namespace and a pidfd for race-free signals.
struct Child {
    pid: u32,
    pidfd: OwnedFd,
}

impl Child {
    fn kill(&self) {
        // SAFETY: signalling through our own pidfd; the process cannot have been reused.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Waits for the child (the pid namespace's init) and returns how it ended, with the
    /// resources it and the children it reaped used.
    fn reap(&self) -> (Exit, Option<libc::rusage>) {
        let mut status: c_int = 0;
        // SAFETY: rusage is plain old data.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waiting for our own child with valid out-pointers.
            let rc = unsafe {
                libc::wait4(
                    i32::try_from(self.pid).unwrap_or(-1),
                    &mut status,
                    0,
                    &mut usage,
                )
            };
            if rc >= 0 {
                break;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return (Exit::Signal(libc::SIGKILL), None);
            }
        }
        let exit = if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        };
        (exit, Some(usage))
    }
}

fn spawn(plan: &ChildPlan, pipes: &Pipes) -> Result<Child, SandboxError> {
    let fds = ChildFds {
        sync: pipes.sync_r.as_raw_fd(),
        error: pipes.err_w.as_raw_fd(),
        pass: pipes.pass_child.as_raw_fd(),
        stdin: pipes.stdin.as_raw_fd(),
        stdout: pipes.out_w.as_raw_fd(),
        stderr: pipes.err_out_w.as_raw_fd(),
        status: pipes.status_w.as_raw_fd(),
    };
    let mut pidfd: c_int = -1;
    let flags = (CLONE_FLAGS | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: clone without a new stack behaves like fork: the child runs on a copy of this
    // stack and executes only `child_main`, which makes raw system calls on data prepared above
    // and ends in execve or _exit. `pidfd` receives the pidfd (CLONE_PIDFD).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            &mut pidfd as *mut c_int,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        return Err(SandboxError::host(
            "creating the sandbox's namespaces (clone)",
            io::Error::last_os_error(),
        ));
    }
    if rc == 0 {
        child::child_main(plan, &fds);
    }
    let pid = u32::try_from(rc).unwrap_or(0);
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Child { pid, pidfd })
}

/// Reads a failure record from the error pipe; `None` at EOF (the child reached execve).
fn read_failure(err_r: &OwnedFd) -> Option<(u32, u32, i32)> {
    let mut buf = [0u8; 12];
    let mut got = 0usize;
    while got < buf.len() {
        let rest = buf.get_mut(got..)?;
        // SAFETY: reading into the unfilled part of `buf`.
        let n = unsafe { libc::read(err_r.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += usize::try_from(n).unwrap_or(0);
    }
    if got == 0 {
        return None;
    }
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(buf.get(i..i + 4).unwrap_or(&[0; 4]));
        w
    };
    Some((
        u32::from_ne_bytes(word(0)),
        u32::from_ne_bytes(word(4)),
        i32::from_ne_bytes(word(8)),
    ))
}

/// Receives the bridge listener and the seccomp listener the child passed, if any.
fn receive_fds(sock: &OwnedFd) -> (Option<OwnedFd>, Option<OwnedFd>) {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&space);
    // SAFETY: every pointer in `msg` refers to live buffers of the stated sizes.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 1 {
        return (None, None);
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in, within `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                let count = len / std::mem::size_of::<RawFd>();
                let ptr = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(ptr.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let mut fds = fds.into_iter();
    let bridge = if data[0] & 1 != 0 { fds.next() } else { None };
    let notify = if data[0] & 2 != 0 { fds.next() } else { None };
    (bridge, notify)
}

/// The command's status as its init reported it; SIGKILL when the init was killed first (the
/// timeout) and reported nothing.
fn command_status(status_r: &OwnedFd) -> Exit {
    let mut buf = [0u8; 4];
    // SAFETY: reading four bytes into a valid buffer; the write end is closed, so no blocking.
    let n = unsafe { libc::read(status_r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n != 4 {
        return Exit::Signal(libc::SIGKILL);
    }
    let status = c_int::from_ne_bytes(buf);
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

struct Watched {
    bytes: u64,
    truncated: bool,
    timed_out: bool,
}

/// Streams output to `sink` up to the cap, kills the tree at the deadline, and returns once
/// both pipes are closed (every process in the sandbox is gone).
fn supervise(
    child: &Child,
    out: OwnedFd,
    err: OwnedFd,
    deadline: Instant,
    cap: u64,
    sink: &mut dyn FnMut(Stream, &[u8]),
) -> Watched {
    let mut w = Watched {
        bytes: 0,
        truncated: false,
        timed_out: false,
    };
    let mut open = [Some(out), Some(err)];
    let mut buf = vec![0u8; 64 * 1024];
    let mut killed = false;
    let mut exited = false;
    while open.iter().any(Option::is_some) || !exited {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        if !exited {
            pfds.push(libc::pollfd {
                fd: child.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(usize::MAX);
        }
        for (i, fd) in open.iter().enumerate() {
            if let Some(fd) = fd {
                pfds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        let now = Instant::now();
        let wait = if killed {
            // The tree is dying; pipes close as soon as the kernel has reaped it.
            Duration::from_millis(100)
        } else {
            deadline.saturating_duration_since(now)
        };
        let ms = c_int::try_from(wait.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            if !killed && Instant::now() >= deadline {
                w.timed_out = true;
                child.kill();
                killed = true;
            } else if killed && exited {
                // Nothing more will come: a pipe left open now could only be held by a process
                // that escaped the namespace, which the kernel does not allow.
                break;
            }
            continue;
        }
        for (p, i) in pfds.iter().zip(which) {
            if p.revents == 0 {
                continue;
            }
            if i == usize::MAX {
                // The init of the pid namespace is gone, and with it every process inside.
                exited = true;
                continue;
            }
            let Some(slot) = open.get_mut(i) else {
                continue;
            };
            let Some(fd) = slot.as_ref() else { continue };
            // SAFETY: reading into `buf` from an open pipe.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                *slot = None;
                continue;
            }
            let chunk = buf
                .get(..usize::try_from(n).unwrap_or(0))
                .unwrap_or_default();
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let room = cap.saturating_sub(w.bytes);
            let len = chunk.len() as u64;
            if room > 0 {
                let keep = usize::try_from(room.min(len)).unwrap_or(chunk.len());
                sink(stream, chunk.get(..keep).unwrap_or_default());
            }
            if len > room && !w.truncated {
                w.truncated = true;
                let marker = format!("\n[cordon: output truncated after {cap} bytes]\n");
                sink(stream, marker.as_bytes());
            }
            w.bytes += len;
        }
    }
    w
}
