//! The code that runs in the cloned child, between `clone` and `execve`.
//!
//! The parent may be multi-threaded (the MCP server runs on tokio), so the child is a copy of one
//! thread of a process whose other threads may hold locks (the allocator's among them). Nothing
//! here allocates, locks or logs: every string, pointer array, BPF program and rule was built by
//! the parent into a [`ChildPlan`], and the child only makes system calls on it. A failure is
//! written to the error pipe as (stage, index, errno) and the child exits; the parent turns it
//! into a [`crate::SandboxError`] that names the step.

use std::ffi::{CString, c_char, c_int, c_ulong, c_void};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// One filesystem step of building the new root, before `pivot_root`.
pub(crate) enum Step {
    Mkdir(CString),
    /// An empty regular file to mount a file onto.
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Mount {
        src: Option<CString>,
        dst: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// `mount_setattr`: add attributes (read-only, nosuid, nodev, noexec), recursively or not.
    SetAttr {
        path: CString,
        set: u64,
        recursive: bool,
    },
}

/// A landlock path rule added after `pivot_root`, when the new root's inodes exist.
pub(crate) struct PathRule {
    pub path: CString,
    pub access: u64,
}

/// Everything the child needs, prepared by the parent.
pub(crate) struct ChildPlan {
    pub steps: Vec<Step>,
    pub new_root: CString,
    /// Steps after `pivot_root`, on paths inside the sandbox.
    pub late_steps: Vec<Step>,
    pub hostname: CString,
    pub bridge_port: Option<u16>,
    pub landlock_fd: Option<RawFd>,
    pub landlock_rules: Vec<PathRule>,
    pub rlimits: Vec<(c_int, u64)>,
    pub cap_last: c_int,
    pub setgroups: bool,
    pub uid: u32,
    pub gid: u32,
    pub seccomp: Vec<libc::sock_filter>,
    pub seccomp_listener: bool,
}

/// Descriptors the child uses; all were opened close-on-exec by the parent.
pub(crate) struct ChildFds {
    pub sync: RawFd,
    pub error: RawFd,
    pub pass: RawFd,
    /// The parent writes the command here once the sandbox is ready (see `Message`).
    pub command: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// The init writes the command's raw wait status here.
    pub status: RawFd,
}

/// Where the child stopped, written to the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Wait = 1,
    Session,
    Stdio,
    Propagation,
    Step,
    Pivot,
    LateStep,
    Hostname,
    Loopback,
    Bridge,
    Chdir,
    Rlimit,
    Groups,
    Ids,
    Caps,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Pass,
    Fds,
    Init,
    Exec,
}

impl Stage {
    /// Each stage and what it does, for error messages; also decodes the error pipe.
    const ALL: [(Stage, &'static str); 22] = [
        (Stage::Wait, "waiting for the parent or the command"),
        (Stage::Session, "starting a new session"),
        (Stage::Stdio, "connecting stdin, stdout and stderr"),
        (Stage::Propagation, "making the mount table private"),
        (Stage::Step, "building the root"),
        (Stage::Pivot, "switching to the new root (pivot_root)"),
        (Stage::LateStep, "sealing the new root"),
        (Stage::Hostname, "setting the host name"),
        (Stage::Loopback, "bringing up the loopback interface"),
        (Stage::Bridge, "listening on the bridge port"),
        (Stage::Chdir, "entering the working directory"),
        (Stage::Rlimit, "setting resource limits"),
        (Stage::Groups, "dropping supplementary groups"),
        (Stage::Ids, "switching to the sandbox user"),
        (Stage::Caps, "dropping capabilities"),
        (Stage::NoNewPrivs, "setting no_new_privs"),
        (Stage::Landlock, "applying the landlock rules"),
        (Stage::Seccomp, "installing the seccomp filter"),
        (Stage::Pass, "passing descriptors to the parent"),
        (Stage::Fds, "closing inherited descriptors"),
        (
            Stage::Init,
            "starting the command under the namespace's init",
        ),
        (Stage::Exec, "executing the command"),
    ];

    /// The stage written as `v`, with its description.
    pub(crate) fn decode(v: u32) -> Option<(Stage, &'static str)> {
        Self::ALL.into_iter().find(|(s, _)| *s as u32 == v)
    }
}

#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;
const AT_RECURSIVE: c_int = 0x8000;

/// Writes a (stage, index, errno) record to the error pipe; stage 0 means "ready".
fn report(fds: &ChildFds, stage: u32, index: usize, errno: c_int) {
    let mut msg = [0u8; 12];
    let (a, rest) = msg.split_at_mut(4);
    let (b, c) = rest.split_at_mut(4);
    a.copy_from_slice(&stage.to_ne_bytes());
    b.copy_from_slice(&(u32::try_from(index).unwrap_or(u32::MAX)).to_ne_bytes());
    c.copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: `msg` is a valid 12-byte buffer; a short or failed write only loses the detail,
    // and the parent then reports the exit status instead.
    unsafe {
        libc::write(fds.error, msg.as_ptr().cast(), msg.len());
    }
}

/// Reports a failure and exits. Only raw `write` and `_exit`.
fn fail(fds: &ChildFds, stage: Stage, index: usize, errno: c_int) -> ! {
    report(fds, stage as u32, index, errno);
    // SAFETY: `_exit` never returns and runs no atexit handlers or destructors, which must not
    // run in a forked copy of the parent.
    unsafe { libc::_exit(127) }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// Runs one filesystem step; returns the errno on failure.
fn run_step(step: &Step) -> Result<(), c_int> {
    let rc = match step {
        Step::Mkdir(path) => {
            // SAFETY: the path is a valid NUL-terminated string owned by the plan.
            let rc = unsafe { libc::mkdir(path.as_ptr(), 0o755) };
            if rc != 0 && errno() == libc::EEXIST {
                0
            } else {
                rc
            }
        }
        Step::Touch(path) => {
            // SAFETY: as above; the returned descriptor is closed at once.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                )
            };
            if fd >= 0 {
                // SAFETY: `fd` was just opened by this function.
                unsafe { libc::close(fd) };
                0
            } else {
                -1
            }
        }
        // SAFETY: both strings are valid and NUL-terminated.
        Step::Symlink { target, link } => unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) },
        Step::Mount {
            src,
            dst,
            fstype,
            flags,
            data,
        } => {
            // SAFETY: every pointer is either null or a valid NUL-terminated string.
            unsafe {
                libc::mount(
                    opt_ptr(src),
                    dst.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast::<c_void>(),
                )
            }
        }
        Step::SetAttr {
            path,
            set,
            recursive,
        } => {
            let attr = libc::mount_attr {
                attr_set: *set,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let flags = if *recursive { AT_RECURSIVE } else { 0 };
            // SAFETY: `attr` is a valid `mount_attr` on the stack and its size is passed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags | libc::AT_SYMLINK_NOFOLLOW,
                    &attr as *const libc::mount_attr,
                    std::mem::size_of::<libc::mount_attr>(),
                )
            };
            c_int::try_from(rc).unwrap_or(-1)
        }
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Brings `lo` up in the new network namespace.
fn loopback_up() -> Result<(), c_int> {
    // SAFETY: plain socket creation.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid `ifreq`.
    let rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &ifr as *const libc::ifreq) };
    let err = errno();
    // SAFETY: `sock` was opened above.
    unsafe { libc::close(sock) };
    if rc == 0 { Ok(()) } else { Err(err) }
}

/// A TCP listener on 127.0.0.1:`port` inside the namespace; the parent accepts on it from
/// outside, so the bridge needs no process inside the sandbox.
fn bridge_listener(port: u16) -> Result<RawFd, c_int> {
    // SAFETY: plain socket creation.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid `sockaddr_in` and its size is passed.
    let rc = unsafe {
        libc::bind(
            sock,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    // SAFETY: `sock` is a bound stream socket.
    if rc != 0 || unsafe { libc::listen(sock, 128) } != 0 {
        return Err(errno());
    }
    Ok(sock)
}

/// Sends up to two descriptors (bridge listener, seccomp listener) to the parent; the first data
/// byte says which are present.
fn pass_fds(sock: RawFd, bridge: Option<RawFd>, notify: Option<RawFd>) -> Result<(), c_int> {
    let mut fds = [-1 as RawFd; 2];
    let mut n = 0usize;
    for fd in [bridge, notify].into_iter().flatten() {
        if let Some(slot) = fds.get_mut(n) {
            *slot = fd;
            n += 1;
        }
    }
    let mut data = [u8::from(bridge.is_some()) | (u8::from(notify.is_some()) << 1)];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for two descriptors, aligned for `cmsghdr`.
    let mut space = [0u64; 8];
    // SAFETY: `msghdr` is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if n > 0 {
        let fd_bytes = (n * std::mem::size_of::<RawFd>()) as u32;
        msg.msg_control = space.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
        // SAFETY: `msg_control` points at `space`, which is large enough for CMSG_SPACE(8).
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if cmsg.is_null() {
            return Err(libc::EINVAL);
        }
        // SAFETY: `cmsg` points into `space`; the data area holds `n` descriptors.
        unsafe {
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes as usize,
            );
        }
    }
    // SAFETY: `msg` and everything it points to live until the call returns.
    let rc = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

fn check(rc: c_int, fds: &ChildFds, stage: Stage, index: usize) {
    if rc < 0 {
        fail(fds, stage, index, errno());
    }
}

fn check_long(rc: libc::c_long, fds: &ChildFds, stage: Stage, index: usize) {
    if rc < 0 {
        fail(fds, stage, index, errno());
    }
}

fn dup_onto(fd: RawFd, target: RawFd, fds: &ChildFds) {
    if fd == target {
        // SAFETY: clearing close-on-exec on an open descriptor.
        check(
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) },
            fds,
            Stage::Stdio,
            0,
        );
    } else {
        // SAFETY: both descriptors are valid; dup2 replaces `target` atomically.
        check(unsafe { libc::dup2(fd, target) }, fds, Stage::Stdio, 0);
    }
}

/// The child: waits for the parent's maps, builds the root, confines itself and executes the
/// command. Never returns.
pub(crate) fn child_main(plan: &ChildPlan, fds: &ChildFds) -> ! {
    // Die with the parent thread from the first instruction on (set again after the id change,
    // which clears it).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };

    // Wait until the parent has written the uid/gid maps and joined us to the cgroups.
    let mut go = [0u8; 1];
    // SAFETY: reading one byte into a valid buffer.
    let n = unsafe { libc::read(fds.sync, go.as_mut_ptr().cast(), 1) };
    if n != 1 {
        fail(
            fds,
            Stage::Wait,
            0,
            if n == 0 { libc::EPIPE } else { errno() },
        );
    }

    // The command starts with default signal handling and nothing blocked, whatever the
    // caller ignored or masked (an ignored SIGXFSZ would hide the file-size limit).
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition; invalid numbers (32, 33 under glibc) fail harmlessly.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: an empty set on the stack, then SIG_SETMASK with it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }

    // A new session: no controlling terminal of the caller, so no TIOCSTI into it.
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }, fds, Stage::Session, 0);
    dup_onto(fds.stdin, 0, fds);
    dup_onto(fds.stdout, 1, fds);
    dup_onto(fds.stderr, 2, fds);

    // Nothing we mount propagates back to the host.
    // SAFETY: valid string, null source/type/data.
    check(
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        },
        fds,
        Stage::Propagation,
        0,
    );
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(e) = run_step(step) {
            fail(fds, Stage::Step, i, e);
        }
    }

    // SAFETY: valid strings; pivot_root(".", ".") stacks the old root under the new one, and
    // the lazy unmount then drops it, leaving no path to the host's tree.
    unsafe {
        check(libc::chdir(plan.new_root.as_ptr()), fds, Stage::Pivot, 0);
        check_long(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
            fds,
            Stage::Pivot,
            1,
        );
        check(
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            fds,
            Stage::Pivot,
            2,
        );
        check(libc::chdir(c"/".as_ptr()), fds, Stage::Pivot, 3);
    }
    for (i, step) in plan.late_steps.iter().enumerate() {
        if let Err(e) = run_step(step) {
            fail(fds, Stage::LateStep, i, e);
        }
    }

    let name = plan.hostname.as_bytes();
    // SAFETY: pointer and length of a valid buffer.
    check(
        unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) },
        fds,
        Stage::Hostname,
        0,
    );
    if let Err(e) = loopback_up() {
        fail(fds, Stage::Loopback, 0, e);
    }
    let bridge = match plan.bridge_port {
        Some(port) => match bridge_listener(port) {
            Ok(fd) => Some(fd),
            Err(e) => fail(fds, Stage::Bridge, 0, e),
        },
        None => None,
    };

    for (i, (resource, value)) in plan.rlimits.iter().enumerate() {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
        };
        // SAFETY: `lim` is a valid rlimit; the resource constant comes from libc.
        check(
            unsafe { libc::setrlimit(*resource as libc::__rlimit_resource_t, &lim) },
            fds,
            Stage::Rlimit,
            i,
        );
    }

    // Drop every capability, for good: bounding set, ambient set, then ids, then the sets.
    for cap in 0..=plan.cap_last {
        // SAFETY: prctl with integer arguments; EINVAL for caps the kernel lacks is ignored.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 && errno() != libc::EINVAL {
            fail(fds, Stage::Caps, cap as usize, errno());
        }
    }
    // SAFETY: prctl with integer arguments.
    check(
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        },
        fds,
        Stage::Caps,
        100,
    );
    // Raw system calls, not glibc's wrappers: those broadcast the change to every thread glibc
    // believes exists (nptl "setxid"), and this copy of the parent has only one, so the
    // wrappers would wait forever for threads that are not there.
    if plan.setgroups {
        // SAFETY: an empty group list.
        check_long(
            unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) },
            fds,
            Stage::Groups,
            0,
        );
    }
    // SAFETY: integer arguments.
    unsafe {
        check_long(
            libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid),
            fds,
            Stage::Ids,
            0,
        );
        check_long(
            libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid),
            fds,
            Stage::Ids,
            1,
        );
    }
    check_long(crate::caps::clear_thread(), fds, Stage::Caps, 101);
    // SAFETY: prctl with integer arguments.
    unsafe {
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            fds,
            Stage::NoNewPrivs,
            0,
        );
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0),
            fds,
            Stage::NoNewPrivs,
            1,
        );
    }

    if let Some(ruleset) = plan.landlock_fd {
        for (i, rule) in plan.landlock_rules.iter().enumerate() {
            // SAFETY: valid string; O_PATH opens nothing for reading.
            let fd = unsafe { libc::open(rule.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                // A device or directory this host lacks (e.g. /dev/tty): nothing to allow.
                if errno() == libc::ENOENT {
                    continue;
                }
                fail(fds, Stage::Landlock, i, errno());
            }
            let attr = PathBeneath {
                allowed_access: rule.access,
                parent_fd: fd,
            };
            // SAFETY: `attr` is a valid packed landlock_path_beneath_attr.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneath,
                    0,
                )
            };
            let err = errno();
            // SAFETY: `fd` was opened above.
            unsafe { libc::close(fd) };
            if rc != 0 {
                fail(fds, Stage::Landlock, i, err);
            }
        }
        // SAFETY: the ruleset descriptor is valid; flags 0.
        check_long(
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) },
            fds,
            Stage::Landlock,
            usize::MAX,
        );
    }

    // The seccomp filter goes last: after it, mount and friends are gone for us too.
    let prog = libc::sock_fprog {
        len: u16::try_from(plan.seccomp.len()).unwrap_or(0),
        filter: plan.seccomp.as_ptr().cast_mut(),
    };
    let flags: c_ulong = if plan.seccomp_listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `prog` points at the plan's filter, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    check_long(rc, fds, Stage::Seccomp, 0);
    let notify = if plan.seccomp_listener {
        RawFd::try_from(rc).ok()
    } else {
        None
    };

    if bridge.is_some() || notify.is_some() {
        if let Err(e) = pass_fds(fds.pass, bridge, notify) {
            fail(fds, Stage::Pass, 0, e);
        }
        // SAFETY: closing descriptors this function opened.
        unsafe {
            for fd in [bridge, notify].into_iter().flatten() {
                libc::close(fd);
            }
        }
    }

    // Every inherited descriptor this process does not use is closed now: it stays alive as
    // the namespace's init and never execs, and a copy of another run's pipe held here would
    // keep that pipe from reaching end-of-file (a command's stdin, another run's output).
    let mut keep = [
        fds.sync,
        fds.error,
        fds.pass,
        fds.command,
        fds.stdin,
        fds.stdout,
        fds.stderr,
        fds.status,
    ];
    keep.sort_unstable();
    let mut next: RawFd = 3;
    for k in keep {
        if k < next {
            continue;
        }
        if k > next {
            // SAFETY: integer arguments; closes only descriptors no one in this process uses.
            check_long(
                unsafe { libc::syscall(libc::SYS_close_range, next as u32, (k - 1) as u32, 0u32) },
                fds,
                Stage::Fds,
                0,
            );
        }
        next = k + 1;
    }
    // SAFETY: integer arguments.
    check_long(
        unsafe { libc::syscall(libc::SYS_close_range, next as u32, u32::MAX, 0u32) },
        fds,
        Stage::Fds,
        0,
    );
    // The rest (the ones above) close at exec; the error pipe stays usable until then.
    // SAFETY: integer arguments.
    check_long(
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        },
        fds,
        Stage::Fds,
        0,
    );

    // Ready. The parent may keep the sandbox warm and send the command later.
    report(fds, 0, 0, 0);
    let Some(msg) = receive_command(fds) else {
        // The parent dropped the warm sandbox.
        // SAFETY: leaving without running anything of the parent's.
        unsafe { libc::_exit(0) }
    };
    // SAFETY: the message's cwd is NUL-terminated inside the mapping.
    check(unsafe { libc::chdir(msg.cwd) }, fds, Stage::Chdir, 0);

    // This process stays as the pid namespace's init: it reaps, and it reports the command's
    // status. A command running as pid 1 would have init's signal semantics (a kernel-sent
    // SIGXFSZ or a shell's `kill $$` ignored) and nobody would reap its orphans.
    // SAFETY: fork-like clone; the child goes on to execve or _exit below.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        fail(fds, Stage::Init, 0, errno());
    }
    if pid == 0 {
        // SAFETY: prctl with integer arguments. Its own process group, so that signals the
        // init forwards reach the command and its children but not the init.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::setpgid(0, 0);
        }
        exec(&msg, fds);
    }
    init(pid, fds)
}

/// The command's process group, for [`forward`]; 0 until the command exists.
static COMMAND_GROUP: AtomicI32 = AtomicI32::new(0);

/// The init's handler: passes the signal to the command's process group. A pid namespace's init
/// receives a signal from outside only if it handles it, so these are the only ones that reach
/// it; the command may send them to pid 1 too, which only signals itself.
extern "C" fn forward(sig: c_int) {
    let group = COMMAND_GROUP.load(Ordering::Relaxed);
    if group > 0 {
        // SAFETY: kill and errno access are async-signal-safe; errno is restored so the
        // interrupted wait4 sees its own.
        unsafe {
            let saved = *libc::__errno_location();
            libc::kill(-group, sig);
            *libc::__errno_location() = saved;
        }
    }
}

/// Puts the command in its own group (also done by the command itself; whichever runs first
/// wins the race) and installs [`forward`].
fn forward_signals(command: libc::c_long) {
    let Ok(pid) = libc::pid_t::try_from(command) else {
        return;
    };
    // SAFETY: setpgid on our own child; it fails harmlessly if the child already exec'd.
    unsafe { libc::setpgid(pid, pid) };
    COMMAND_GROUP.store(pid, Ordering::Relaxed);
    // The signals the supervisor may ask the init to pass on.
    for sig in crate::Signal::ALL.map(crate::Signal::number) {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = forward as extern "C" fn(c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The command as the child sees it: pointers into an anonymous mapping.
struct Received {
    cwd: *const c_char,
    candidates: *const *const c_char,
    ncandidates: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
}

/// Largest command message (cwd, candidates, argv, environment) the child accepts.
pub(crate) const MAX_MESSAGE: usize = 4 << 20;

fn read_exact(fd: RawFd, mut ptr: *mut u8, mut len: usize) -> bool {
    while len > 0 {
        // SAFETY: `ptr..ptr+len` lies inside a buffer the caller owns.
        let n = unsafe { libc::read(fd, ptr.cast(), len) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return false;
        }
        let n = n as usize;
        // SAFETY: advancing within the same buffer by what was read.
        ptr = unsafe { ptr.add(n) };
        len -= n;
    }
    true
}

/// Reads the command message into a fresh anonymous mapping and builds the pointer arrays
/// there; no allocator involved. Layout: u32 length, then u32 counts (candidates, argv, env),
/// then NUL-terminated strings: cwd, candidates, argv, env.
fn receive_command(fds: &ChildFds) -> Option<Received> {
    let mut len = [0u8; 4];
    if !read_exact(fds.command, len.as_mut_ptr(), 4) {
        return None;
    }
    let len = u32::from_ne_bytes(len) as usize;
    if !(12..=MAX_MESSAGE).contains(&len) {
        fail(fds, Stage::Wait, 1, libc::E2BIG);
    }
    // Strings, then room for every pointer (at most one per byte) and the terminators.
    let size = len + (len + 8) * std::mem::size_of::<usize>() + 64;
    // SAFETY: a private anonymous mapping; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        fail(fds, Stage::Wait, 2, errno());
    }
    let bytes = base.cast::<u8>();
    if !read_exact(fds.command, bytes, len) {
        return None;
    }
    // SAFETY: the mapping holds `len` initialised bytes; reading them as a slice.
    let data = unsafe { std::slice::from_raw_parts(bytes, len) };
    let count = |i: usize| {
        let mut w = [0u8; 4];
        if let Some(src) = data.get(i * 4..i * 4 + 4) {
            w.copy_from_slice(src);
        }
        u32::from_ne_bytes(w) as usize
    };
    let (ncand, argc, envc) = (count(0), count(1), count(2));
    let strings = data.get(12..).unwrap_or_default();
    if strings.last() != Some(&0) {
        fail(fds, Stage::Wait, 3, libc::EINVAL);
    }
    let total = 1 + ncand + argc + envc;
    if strings.iter().filter(|b| **b == 0).count() != total || argc == 0 {
        fail(fds, Stage::Wait, 4, libc::EINVAL);
    }
    // Pointer area, aligned, after the strings.
    let align = std::mem::align_of::<usize>();
    let offset = len.div_ceil(align) * align;
    // SAFETY: `offset` is within the mapping, which is large enough for `total + 3` pointers.
    let ptrs = unsafe { bytes.add(offset) }.cast::<*const c_char>();
    let mut slot = 0usize;
    let mut start = 0usize;
    let base_strings = strings.as_ptr();
    let mut put = |p: *const c_char| {
        // SAFETY: `slot` stays below `total + 3`, inside the pointer area.
        unsafe { ptrs.add(slot).write(p) };
        slot += 1;
    };
    let mut seen = 0usize;
    for (i, b) in strings.iter().enumerate() {
        if *b != 0 {
            continue;
        }
        // SAFETY: `start` indexes into `strings`.
        let p = unsafe { base_strings.add(start) }.cast::<c_char>();
        start = i + 1;
        seen += 1;
        put(p);
        // Layout: cwd, candidates, NULL, argv, NULL, env, NULL (argv is never empty).
        if seen == 1 + ncand {
            put(std::ptr::null());
        }
        if seen == 1 + ncand + argc {
            put(std::ptr::null());
        }
        if seen == total {
            put(std::ptr::null());
        }
    }
    // SAFETY: reading back pointers written above.
    let cwd = unsafe { ptrs.read() };
    // SAFETY: offsets within the pointer area written above.
    let candidates = unsafe { ptrs.add(1) }.cast_const();
    // SAFETY: as above.
    let argv = unsafe { ptrs.add(1 + ncand + 1) }.cast_const();
    // SAFETY: as above.
    let envp = unsafe { ptrs.add(1 + ncand + 1 + argc + 1) }.cast_const();
    Some(Received {
        cwd,
        candidates,
        ncandidates: ncand,
        argv,
        envp,
    })
}

/// Tries each candidate path like execvp; reports the last error if none runs.
fn exec(msg: &Received, fds: &ChildFds) -> ! {
    let mut last = libc::ENOENT;
    for i in 0..msg.ncandidates {
        // SAFETY: the candidate, argv and envp arrays were built by `receive_command` and are
        // null-terminated arrays of pointers to NUL-terminated strings.
        unsafe { libc::execve(*msg.candidates.add(i), msg.argv, msg.envp) };
        last = errno();
        // Keep looking past a missing or non-executable candidate.
        if last != libc::ENOENT && last != libc::EACCES && last != libc::ENOTDIR {
            fail(fds, Stage::Exec, i, last);
        }
    }
    fail(fds, Stage::Exec, msg.ncandidates, last)
}

/// The init: reaps every child, and when the command exits, writes its status and exits, which
/// makes the kernel kill whatever the command left behind.
fn init(command: libc::c_long, fds: &ChildFds) -> ! {
    // SAFETY: integer prctl; closing descriptors this process no longer needs. Not dumpable, so
    // the command (same uid) cannot open /proc/1/mem and forge the status.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::close(fds.error);
        libc::close(0);
        libc::close(1);
        libc::close(2);
    }
    forward_signals(command);
    loop {
        let mut status: c_int = 0;
        // SAFETY: waiting for any child with a valid out-pointer.
        let pid = unsafe { libc::wait4(-1, &mut status, 0, std::ptr::null_mut()) };
        if libc::c_long::from(pid) == command {
            let bytes = status.to_ne_bytes();
            // SAFETY: writing four bytes from a valid buffer.
            unsafe { libc::write(fds.status, bytes.as_ptr().cast(), bytes.len()) };
            // SAFETY: leaving without running anything of the parent's.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 && errno() != libc::EINTR {
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
    }
}
