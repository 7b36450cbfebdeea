//! Preparing a sandbox up to the point where only the command is missing: plan, clone, id
//! maps and cgroup, the child's setup, the bridge and the seccomp supervisor. The result waits,
//! so that [`crate::Sandbox::run`] pays only for sending the command (see `Sandbox`).

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::cgroup::{self, RunCgroup};
use crate::child::{self, ChildFds, ChildPlan, Stage as ChildStage};
use crate::config::SandboxConfig;
use crate::outcome::Exit;
use crate::plan::{self, HostFacts};
use crate::protect::Protected;
use crate::sandbox::Stream;
use crate::seccomp::{self, Creation};
use crate::stage::Stage;
use crate::{SandboxError, landlock_rules, notify};

/// The namespaces every run enters.
pub const NAMESPACES: &[&str] = &["user", "mount", "pid", "ipc", "uts", "net", "cgroup"];

const CLONE_FLAGS: c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// What every run of one sandbox shares: its checked configuration and host facts.
#[derive(Debug)]
pub(crate) struct Inner {
    pub config: SandboxConfig,
    pub workspace: PathBuf,
    pub protected: Protected,
    pub host: HostFacts,
    pub landlock_abi: Option<u8>,
    pub creation: Creation,
    pub cgroups: Option<cgroup::Version>,
    pub downgrades: Vec<String>,
    pub stage: Stage,
}

/// A sandbox waiting for its command. Dropping it kills and reaps the child.
pub(crate) struct Prepared {
    pub child: Child,
    pub cmd_w: Option<OwnedFd>,
    /// The writing end of the command's stdin (closed at once unless the caller asked for it).
    pub stdin_w: Option<OwnedFd>,
    pub err_r: OwnedFd,
    pub out_r: Option<OwnedFd>,
    pub err_out_r: Option<OwnedFd>,
    pub status_r: OwnedFd,
    pub bridge: Option<Bridge>,
    pub supervisor: Option<notify::Supervisor>,
    pub cgroup: Option<RunCgroup>,
    /// The existing protected paths mounted read-only, as scanned when prepared.
    pub protected: Vec<PathBuf>,
    pub reaped: bool,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.reaped {
            self.child.kill();
            self.child.reap();
        }
    }
}

impl Inner {
    pub(crate) fn bridge_port(&self) -> Option<u16> {
        self.config
            .proxy_socket
            .as_ref()
            .map(|_| self.config.bridge_port)
    }

    /// Builds a sandbox up to the command.
    pub(crate) fn prepare(&self) -> Result<Prepared, SandboxError> {
        let protected = self.protected.scan(&self.workspace)?;
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
        let child_plan = ChildPlan {
            steps: root.steps,
            new_root: plan::cstr(self.stage.root().as_os_str().as_encoded_bytes(), "stage")?,
            late_steps,
            hostname: plan::cstr("cordon", "")?,
            bridge_port: self.bridge_port(),
            landlock_fd: landlock.as_ref().map(|l| l.fd.as_raw_fd()),
            landlock_rules: landlock
                .as_ref()
                .map(|l| l.rules_copy())
                .unwrap_or_default(),
            rlimits: self.rlimits(cgroup.is_some()),
            cap_last: self.host.cap_last,
            setgroups: self.host.uid == 0,
            uid: self.config.uid,
            gid: self.config.gid,
            seccomp: seccomp::program(self.creation),
            seccomp_listener: self.creation == Creation::Notify,
        };

        let pipes = Pipes::new()?;
        let child = spawn(&child_plan, &pipes)?;
        let Pipes {
            sync_r,
            sync_w,
            err_r,
            err_w,
            pass_parent,
            pass_child,
            stdin,
            stdin_w,
            out_r,
            out_w,
            err_out_r,
            err_out_w,
            status_r,
            status_w,
            cmd_r,
            cmd_w,
        } = pipes;
        drop((
            sync_r, err_w, pass_child, stdin, out_w, err_out_w, status_w, cmd_r,
        ));
        let mut prepared = Prepared {
            child,
            cmd_w: Some(cmd_w),
            stdin_w: Some(stdin_w),
            err_r,
            out_r: Some(out_r),
            err_out_r: Some(err_out_r),
            status_r,
            bridge: None,
            supervisor: None,
            cgroup,
            protected,
            reaped: false,
        };
        self.release(&prepared.child, prepared.cgroup.as_ref(), &sync_w)?;
        drop(sync_w);
        match read_failure(&prepared.err_r) {
            Some((0, _, _)) => {}
            Some(failure) => {
                return Err(describe(failure, &root.what, &late_what, None));
            }
            None => {
                return Err(SandboxError::Setup {
                    stage: "setting up".into(),
                    source: io::Error::other("the sandbox exited without reporting"),
                });
            }
        }
        drop(landlock);

        let (bridge_fd, notify_fd) = receive_fds(&pass_parent);
        if let (Some(fd), Some(target)) = (bridge_fd, &self.config.proxy_socket) {
            prepared.bridge = Some(
                Bridge::start(fd, target.clone())
                    .map_err(|e| SandboxError::host("starting the proxy bridge", e))?,
            );
        }
        match notify_fd {
            Some(fd) => {
                prepared.supervisor = Some(notify::Supervisor::start(fd, self.protected.clone())?);
            }
            None if self.creation == Creation::Notify => {
                return Err(SandboxError::host(
                    "receiving the seccomp listener",
                    io::Error::other("the child sent none"),
                ));
            }
            None => {}
        }
        Ok(prepared)
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
}

/// Turns a child's failure record into an error that names the step.
pub(crate) fn describe(
    (stage, index, errno): (u32, u32, i32),
    what: &[String],
    late_what: &[String],
    program: Option<&std::ffi::OsStr>,
) -> SandboxError {
    let source = io::Error::from_raw_os_error(errno);
    let index = index as usize;
    let stage = ChildStage::decode(stage);
    let text = match stage {
        Some((ChildStage::Exec, _)) => {
            return SandboxError::Exec {
                program: program
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source,
            };
        }
        Some((ChildStage::Step, _)) => what.get(index).cloned().unwrap_or_default(),
        Some((ChildStage::LateStep, _)) => late_what.get(index).cloned().unwrap_or_default(),
        Some((_, text)) => text.to_owned(),
        None => "setting up".into(),
    };
    SandboxError::Setup {
        stage: text,
        source,
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
pub(crate) struct Pipes {
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    pass_parent: OwnedFd,
    pass_child: OwnedFd,
    /// The command's stdin: a pipe whose writing end stays with the parent.
    stdin: OwnedFd,
    stdin_w: OwnedFd,
    out_r: OwnedFd,
    out_w: OwnedFd,
    err_out_r: OwnedFd,
    err_out_w: OwnedFd,
    status_r: OwnedFd,
    status_w: OwnedFd,
    cmd_r: OwnedFd,
    cmd_w: OwnedFd,
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
        let (cmd_r, cmd_w) = pipe()?;
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
        let (stdin, stdin_w) = pipe()?;
        Ok(Pipes {
            sync_r,
            sync_w,
            err_r,
            err_w,
            pass_parent,
            pass_child,
            stdin,
            stdin_w,
            out_r,
            out_w,
            err_out_r,
            err_out_w,
            status_r,
            status_w,
            cmd_r,
            cmd_w,
        })
    }
}

/// The cloned child: pid in the parent's namespace and a pidfd for race-free signals.
pub(crate) struct Child {
    pub pid: u32,
    pub pidfd: OwnedFd,
}

impl Child {
    /// Kills the init, and with it every process in the sandbox.
    pub(crate) fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Sends `sig` to the init. Other than SIGKILL, it arrives only through the handler the init
    /// installs once the command runs, which forwards it to the command's process group.
    pub(crate) fn signal(&self, sig: c_int) {
        // SAFETY: signalling through our own pidfd; the process cannot have been reused.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Waits for the child (the pid namespace's init) and returns how it ended, with the
    /// resources it and the children it reaped used.
    pub(crate) fn reap(&self) -> (Exit, Option<libc::rusage>) {
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
        command: pipes.cmd_r.as_raw_fd(),
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
pub(crate) fn read_failure(err_r: &OwnedFd) -> Option<(u32, u32, i32)> {
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
pub(crate) fn command_status(status_r: &OwnedFd) -> Exit {
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

pub(crate) struct Watched {
    pub bytes: u64,
    pub truncated: bool,
    pub timed_out: bool,
    pub cancelled: bool,
}

/// Streams output to `sink` up to the cap, kills the tree at the deadline, and returns once
/// both pipes are closed (every process in the sandbox is gone).
pub(crate) fn supervise(
    child: &Child,
    out: OwnedFd,
    err: OwnedFd,
    deadline: Instant,
    cap: u64,
    cancel: Option<&crate::Cancel>,
    sink: &mut dyn FnMut(Stream, &[u8]),
) -> Watched {
    let mut w = Watched {
        bytes: 0,
        truncated: false,
        timed_out: false,
        cancelled: false,
    };
    /// Marks the cancellation handle in `which`.
    const CANCEL: usize = usize::MAX - 1;
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
        if let Some(c) = cancel
            && !killed
        {
            pfds.push(libc::pollfd {
                fd: c.raw(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(CANCEL);
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
            if i == CANCEL {
                let Some(c) = cancel else { continue };
                let signals = c.take_signals();
                if killed {
                    continue;
                }
                if c.is_cancelled() {
                    w.cancelled = true;
                    child.kill();
                    killed = true;
                } else {
                    for s in signals {
                        child.signal(s.number());
                    }
                }
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
