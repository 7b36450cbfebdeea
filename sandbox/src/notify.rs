//! The seccomp supervisor: the calls that create or move filesystem names (mkdir, mknod,
//! symlink, link, rename, open with O_CREAT) are stopped by the filter and performed here, on
//! the sandbox's behalf, after a check against the protected paths.
//!
//! The supervisor reads the path once from the caller's memory and resolves it as the sandbox
//! sees it: from the caller's working directory or directory descriptor, inside the sandbox's
//! root (`/proc/PID/root` with `RESOLVE_IN_ROOT`), following symbolic links in the parent
//! directories and, where the call follows it, in the last component. It then acts on the
//! directory it resolved (`mkdirat(parent_fd, name)`, `renameat2(...)`, `openat(...)` with the
//! new descriptor handed to the caller by `SECCOMP_IOCTL_NOTIF_ADDFD`), so there is no second
//! reading of the path for the caller to race. A target that is protected, or that would move
//! or replace a directory holding protected paths, gets EACCES.
//!
//! The supervisor thread acts without privilege: it drops every capability of its own thread
//! and uses the caller's umask, so the kernel's permission checks and the sandbox's read-only
//! mounts apply to it as to the caller. Landlock does not, so the supervisor itself refuses
//! anything outside the directories landlock lets the sandbox write (`/workspace`, `/tmp`,
//! `/dev/shm`), except reopening the caller's own descriptors (`/dev/stderr`) and the device
//! nodes landlock allows.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crate::SandboxError;
use crate::config::{DEVICE_NODES, WORKSPACE};
use crate::protect::Protected;

const MAX_PATH: usize = 4096;
const MAX_LINKS: usize = 40;

/// Directories landlock lets the sandbox write; the supervisor creates nothing elsewhere.
const WRITABLE: &[&str] = &[WORKSPACE, "/tmp", "/dev/shm"];

/// A running supervisor thread for one sandbox.
pub(crate) struct Supervisor {
    stop_w: OwnedFd,
    denials: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub(crate) fn start(
        listener: OwnedFd,
        protected: Protected,
    ) -> Result<Supervisor, SandboxError> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(SandboxError::host(
                "creating the supervisor's stop pipe",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: pipe2 succeeded; both descriptors are ours.
        let (stop_r, stop_w) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let denials = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&denials);
        let thread = std::thread::Builder::new()
            .name("cordon-notify".into())
            .spawn(move || {
                if let Err(e) = unprivileged_thread() {
                    // Without this the supervisor would act with the caller's privileges: stop,
                    // and every notified call fails (ENOSYS) instead.
                    tracing::error!(error = %e, "the seccomp supervisor could not drop privileges");
                    return;
                }
                let s = Session {
                    listener,
                    protected,
                    denials: counter,
                };
                s.serve(&stop_r);
            })
            .map_err(|e| SandboxError::host("starting the seccomp supervisor", e))?;
        Ok(Supervisor {
            stop_w,
            denials,
            thread: Some(thread),
        })
    }

    /// Stops the thread and returns how many calls it refused as protected.
    pub(crate) fn stop(mut self) -> u64 {
        self.halt();
        self.denials.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        let b = [1u8];
        // SAFETY: one byte from a valid buffer to our own pipe.
        unsafe { libc::write(self.stop_w.as_raw_fd(), b.as_ptr().cast(), 1) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Gives this thread (only) its own umask and no capabilities. Raw system calls: glibc's
/// wrappers would apply the change to every thread of the process.
fn unprivileged_thread() -> io::Result<()> {
    // SAFETY: unshare(CLONE_FS) affects only the calling thread.
    if unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_FS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: umask on this thread's own fs_struct, now unshared.
    unsafe { libc::umask(0) };
    if crate::caps::clear_thread() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

struct Session {
    listener: OwnedFd,
    protected: Protected,
    denials: Arc<AtomicU64>,
}

/// What to answer a call with.
enum Answer {
    /// The call's return value (0, or a descriptor already installed).
    Value(i64),
    /// A new descriptor to install in the caller as the call's result.
    Fd(OwnedFd, bool),
    /// An errno.
    Error(i32),
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Session {
    fn serve(&self, stop: &OwnedFd) {
        loop {
            let mut pfds = [
                libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd structs.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if pfds[1].revents != 0 {
                return;
            }
            if pfds[0].revents & libc::POLLIN != 0 {
                self.one();
            } else if pfds[0].revents != 0 {
                // POLLHUP: every process using the filter is gone.
                return;
            }
        }
    }

    fn one(&self) {
        // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV fills a valid seccomp_notif.
        let rc = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req as *mut libc::seccomp_notif,
            )
        };
        if rc != 0 {
            // ENOENT: the caller died before we read the request.
            return;
        }
        let answer = match self.handle(&req) {
            Ok(a) => a,
            Err(e) => Answer::Error(errno_of(&e)),
        };
        match answer {
            Answer::Fd(fd, cloexec) => {
                let addfd = libc::seccomp_notif_addfd {
                    id: req.id,
                    flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
                    srcfd: fd.as_raw_fd() as u32,
                    newfd: 0,
                    newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
                };
                // SAFETY: ADDFD reads a valid seccomp_notif_addfd; with FLAG_SEND it also answers
                // the call with the new descriptor's number.
                let rc = unsafe {
                    libc::ioctl(
                        self.listener.as_raw_fd(),
                        libc::SECCOMP_IOCTL_NOTIF_ADDFD,
                        &addfd as *const libc::seccomp_notif_addfd,
                    )
                };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    self.respond(req.id, 0, -errno_of(&e));
                }
            }
            Answer::Value(v) => self.respond(req.id, v, 0),
            Answer::Error(errno) => self.respond(req.id, 0, -errno),
        }
    }

    fn respond(&self, id: u64, val: i64, error: i32) {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags: 0,
        };
        // SAFETY: SEND reads a valid seccomp_notif_resp. ENOENT (the caller died) is fine.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
    }

    fn refuse(&self, what: &str, rel: &str) -> Answer {
        self.denials.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %rel, "refused {what} a protected path");
        Answer::Error(libc::EACCES)
    }

    fn handle(&self, req: &libc::seccomp_notif) -> io::Result<Answer> {
        let a = req.data.args;
        let arg = |i: usize| a.get(i).copied().unwrap_or(0);
        let at = |i: usize| arg(i) as i32;
        let cwd = libc::AT_FDCWD;
        let caller = Caller::new(req)?;
        let nr = i64::from(req.data.nr);
        let umask = caller.umask;
        match nr {
            libc::SYS_mkdir | libc::SYS_mkdirat => {
                let (dfd, ptr, mode) = if nr == libc::SYS_mkdir {
                    (cwd, arg(0), arg(1))
                } else {
                    (at(0), arg(1), arg(2))
                };
                let t = caller.target(dfd, ptr, false)?;
                if let Some(rel) = &t.rel
                    && self.protected.is_protected(rel)
                {
                    return Ok(self.refuse("creating", rel));
                }
                t.writable()?;
                let mode = (mode as libc::mode_t) & 0o7777 & !umask;
                // SAFETY: a directory descriptor and a valid name.
                check(unsafe { libc::mkdirat(t.dir.as_raw_fd(), t.name.as_ptr(), mode) })?;
                Ok(Answer::Value(0))
            }
            libc::SYS_mknod | libc::SYS_mknodat => {
                let (dfd, ptr, mode, dev) = if nr == libc::SYS_mknod {
                    (cwd, arg(0), arg(1), arg(2))
                } else {
                    (at(0), arg(1), arg(2), arg(3))
                };
                let mode = mode as libc::mode_t;
                let kind = mode & libc::S_IFMT;
                if !(kind == 0
                    || kind == libc::S_IFREG
                    || kind == libc::S_IFIFO
                    || kind == libc::S_IFSOCK)
                {
                    return Ok(Answer::Error(libc::EPERM));
                }
                let t = caller.target(dfd, ptr, false)?;
                if let Some(rel) = &t.rel
                    && (self.protected.is_protected(rel) || self.protected.holds_protected(rel))
                {
                    return Ok(self.refuse("creating", rel));
                }
                t.writable()?;
                let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
                // SAFETY: a directory descriptor and a valid name.
                check(unsafe {
                    libc::mknodat(t.dir.as_raw_fd(), t.name.as_ptr(), mode, dev as libc::dev_t)
                })?;
                Ok(Answer::Value(0))
            }
            libc::SYS_symlink | libc::SYS_symlinkat => {
                let (target_ptr, dfd, ptr) = if nr == libc::SYS_symlink {
                    (arg(0), cwd, arg(1))
                } else {
                    (arg(0), at(1), arg(2))
                };
                let content = CString::new(caller.read_string(target_ptr)?)
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let t = caller.target(dfd, ptr, false)?;
                if let Some(rel) = &t.rel
                    && (self.protected.is_protected(rel) || self.protected.holds_protected(rel))
                {
                    return Ok(self.refuse("creating", rel));
                }
                t.writable()?;
                // SAFETY: valid strings and a directory descriptor.
                check(unsafe {
                    libc::symlinkat(content.as_ptr(), t.dir.as_raw_fd(), t.name.as_ptr())
                })?;
                Ok(Answer::Value(0))
            }
            libc::SYS_link | libc::SYS_linkat => {
                let (odfd, optr, ndfd, nptr, flags) = if nr == libc::SYS_link {
                    (cwd, arg(0), cwd, arg(1), 0)
                } else {
                    (at(0), arg(1), at(2), arg(3), arg(4) as i32)
                };
                if flags & !libc::AT_SYMLINK_FOLLOW != 0 {
                    // AT_EMPTY_PATH would link a descriptor the supervisor cannot see.
                    return Ok(Answer::Error(libc::EINVAL));
                }
                let old = caller.target(odfd, optr, flags & libc::AT_SYMLINK_FOLLOW != 0)?;
                let new = caller.target(ndfd, nptr, false)?;
                for rel in [&old.rel, &new.rel].into_iter().flatten() {
                    if self.protected.is_protected(rel) || self.protected.holds_protected(rel) {
                        return Ok(self.refuse("linking", rel));
                    }
                }
                new.writable()?;
                // SAFETY: directory descriptors and valid names; the last link was resolved.
                check(unsafe {
                    libc::linkat(
                        old.dir.as_raw_fd(),
                        old.name.as_ptr(),
                        new.dir.as_raw_fd(),
                        new.name.as_ptr(),
                        0,
                    )
                })?;
                Ok(Answer::Value(0))
            }
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => {
                let (odfd, optr, ndfd, nptr, flags) = match nr {
                    libc::SYS_rename => (cwd, arg(0), cwd, arg(1), 0),
                    libc::SYS_renameat => (at(0), arg(1), at(2), arg(3), 0),
                    _ => (at(0), arg(1), at(2), arg(3), arg(4) as u32),
                };
                let old = caller.target(odfd, optr, false)?;
                let new = caller.target(ndfd, nptr, false)?;
                for rel in [&old.rel, &new.rel].into_iter().flatten() {
                    if rel.is_empty()
                        || self.protected.is_protected(rel)
                        || self.protected.holds_protected(rel)
                    {
                        return Ok(self.refuse("moving", rel));
                    }
                }
                old.writable()?;
                new.writable()?;
                // SAFETY: directory descriptors, valid names, the caller's flags.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        old.dir.as_raw_fd(),
                        old.name.as_ptr(),
                        new.dir.as_raw_fd(),
                        new.name.as_ptr(),
                        flags,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(Answer::Value(0))
            }
            libc::SYS_creat | libc::SYS_open | libc::SYS_openat => {
                let (dfd, ptr, flags, mode) = match nr {
                    libc::SYS_creat => (
                        cwd,
                        arg(0),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                        arg(1),
                    ),
                    libc::SYS_open => (cwd, arg(0), arg(1) as i32, arg(2)),
                    _ => (at(0), arg(1), arg(2) as i32, arg(3)),
                };
                self.open(
                    &caller,
                    dfd,
                    ptr,
                    flags,
                    (mode as libc::mode_t) & 0o7777 & !umask,
                )
            }
            _ => Ok(Answer::Error(libc::ENOSYS)),
        }
    }

    fn open(
        &self,
        caller: &Caller,
        dfd: i32,
        ptr: u64,
        flags: i32,
        mode: libc::mode_t,
    ) -> io::Result<Answer> {
        let follow = flags & (libc::O_NOFOLLOW | libc::O_EXCL) == 0;
        let cloexec = flags & libc::O_CLOEXEC != 0;
        let t = caller.target(dfd, ptr, follow)?;
        // The caller's own descriptors (/dev/stderr, /dev/fd/1, /proc/self/fd/2): reopened
        // through the host's /proc, as the kernel would.
        if let Some(fd) = t.own_fd {
            let path = CString::new(format!("/proc/{}/fd/{fd}", caller.pid))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let reopen = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
            // SAFETY: a valid path string; the flags are the caller's.
            let fd = unsafe { libc::open(path.as_ptr(), reopen | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a new descriptor nobody else owns.
            return Ok(Answer::Fd(unsafe { OwnedFd::from_raw_fd(fd) }, cloexec));
        }
        if let Some(rel) = &t.rel
            && (self.protected.is_protected(rel) || self.protected.holds_protected(rel))
        {
            return Ok(self.refuse("creating", rel));
        }
        // Shells open `/dev/null` with O_CREAT; landlock lets the sandbox write the device nodes.
        let device = DEVICE_NODES
            .iter()
            .any(|d| t.full.as_slice() == d.as_bytes());
        if !device {
            t.writable()?;
        }
        let mut flags = if device {
            flags & !(libc::O_CREAT | libc::O_EXCL)
        } else {
            flags
        };
        // Opening a FIFO for writing blocks until a reader comes, and this thread serves every
        // call of the sandbox: open it non-blocking (no reader yet gives ENXIO) instead.
        if is_fifo(&t.dir, &t.name) {
            flags |= libc::O_NONBLOCK;
        }
        // The last component was resolved above: never follow it again.
        // SAFETY: a directory descriptor, a valid name, the caller's flags and mode.
        let fd = unsafe {
            libc::openat(
                t.dir.as_raw_fd(),
                t.name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nobody else owns.
        Ok(Answer::Fd(unsafe { OwnedFd::from_raw_fd(fd) }, cloexec))
    }
}

/// The process a request came from.
struct Caller {
    pid: u32,
    /// The caller's pid inside the sandbox, as `/proc/self` resolves there.
    nspid: Vec<u8>,
    umask: libc::mode_t,
    root: OwnedFd,
    mem: File,
}

/// A resolved target: the directory that holds it, its name there, its full path inside the
/// sandbox, and the workspace-relative path (None outside the workspace).
struct Target {
    dir: OwnedFd,
    name: CString,
    full: Vec<u8>,
    rel: Option<String>,
    /// The path named one of the caller's own descriptors through /proc/self/fd.
    own_fd: Option<i32>,
}

impl Target {
    /// Whether landlock would let the sandbox write here; EACCES otherwise, as landlock says.
    fn writable(&self) -> io::Result<()> {
        let dir = split(&self.full).0;
        let inside = WRITABLE.iter().any(|w| {
            let w = w.as_bytes();
            dir == w || (dir.starts_with(w) && dir.get(w.len()) == Some(&b'/'))
        });
        if inside {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EACCES))
        }
    }
}

impl Caller {
    fn new(req: &libc::seccomp_notif) -> io::Result<Caller> {
        let pid = req.pid;
        let root = open_path(&format!("/proc/{pid}/root"), libc::O_DIRECTORY)?;
        let mem = File::open(format!("/proc/{pid}/mem"))?;
        // The umask the kernel would have applied to the caller's own call, and its pid in the
        // sandbox (the last NSpid field).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
        };
        let umask = field("Umask:")
            .and_then(|v| libc::mode_t::from_str_radix(v, 8).ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        let nspid = field("NSpid:")
            .and_then(|v| v.split_whitespace().last())
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        Ok(Caller {
            pid,
            nspid,
            umask,
            root,
            mem,
        })
    }

    /// Reads a NUL-terminated string from the caller's memory, once.
    fn read_string(&self, addr: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        let mut at = addr;
        while out.len() < MAX_PATH {
            // Never read across a page boundary in one go: the next page may be unmapped.
            let to_page = 4096 - (at % 4096) as usize;
            let want = to_page.min(chunk.len());
            let buf = chunk.get_mut(..want).unwrap_or_default();
            let n = self.mem.read_at(buf, at)?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            let got = buf.get(..n).unwrap_or_default();
            if let Some(end) = got.iter().position(|b| *b == 0) {
                out.extend_from_slice(got.get(..end).unwrap_or_default());
                return Ok(out);
            }
            out.extend_from_slice(got);
            at += n as u64;
        }
        Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
    }

    /// `/proc/self` names the looking process, which for the supervisor is outside the sandbox's
    /// pid namespace: spell the caller's own paths (`/proc/self/...`, and the `/dev/fd`,
    /// `/dev/stdin|stdout|stderr` links cordon put in `/dev`) with its pid instead.
    fn own_proc(&self, full: Vec<u8>) -> Vec<u8> {
        let pid = String::from_utf8_lossy(&self.nspid).into_owned();
        let prefixes: [(&[u8], String); 6] = [
            (b"/proc/self/", format!("/proc/{pid}/")),
            (b"/proc/thread-self/", format!("/proc/{pid}/")),
            (b"/dev/fd/", format!("/proc/{pid}/fd/")),
            (b"/dev/stdin", format!("/proc/{pid}/fd/0")),
            (b"/dev/stdout", format!("/proc/{pid}/fd/1")),
            (b"/dev/stderr", format!("/proc/{pid}/fd/2")),
        ];
        for (from, to) in prefixes {
            let exact = !from.ends_with(b"/");
            if (exact && full.as_slice() == from) || (!exact && full.starts_with(from)) {
                let mut out = to.into_bytes();
                out.extend_from_slice(full.get(from.len()..).unwrap_or_default());
                return out;
            }
        }
        full
    }

    /// Resolves the path at `ptr` relative to `dfd`, as the caller's call would.
    fn target(&self, dfd: i32, ptr: u64, follow: bool) -> io::Result<Target> {
        let path = self.read_string(ptr)?;
        if path.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let mut full: Vec<u8> = if path.first() == Some(&b'/') {
            path
        } else {
            let base = if dfd == libc::AT_FDCWD {
                format!("/proc/{}/cwd", self.pid)
            } else {
                format!("/proc/{}/fd/{dfd}", self.pid)
            };
            let mut b = std::fs::read_link(base)?.into_os_string().into_vec();
            b.push(b'/');
            b.extend_from_slice(&path);
            b
        };
        for _ in 0..MAX_LINKS {
            full = self.own_proc(full);
            let (parent, name) = split(&full);
            if name.is_empty() || name == b"." || name == b".." {
                // No call can create these names; answer as the kernel does for mkdir.
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            let dir = openat2_in_root(&self.root, parent)?;
            let mut real = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
                .into_os_string()
                .into_vec();
            if let Some(fd) = own_fd(&real, name, &self.nspid) {
                return Ok(Target {
                    dir,
                    name: cname(name)?,
                    full: real,
                    rel: None,
                    own_fd: Some(fd),
                });
            }
            if follow && let Some(link) = readlink_at(&dir, name)? {
                full = if link.first() == Some(&b'/') {
                    link
                } else {
                    real.push(b'/');
                    real.extend_from_slice(&link);
                    real
                };
                continue;
            }
            if real != b"/" {
                real.push(b'/');
            }
            real.extend_from_slice(name);
            return Ok(Target {
                dir,
                name: cname(name)?,
                rel: workspace_relative(&real),
                full: real,
                own_fd: None,
            });
        }
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    }
}

fn is_fifo(dir: &OwnedFd, name: &CString) -> bool {
    // SAFETY: stat is plain old data; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a directory descriptor, a valid name and an out-pointer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
}

fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `/proc/<caller's pid>/fd` + "2" (what `/proc/self/fd/2` resolves to): one of the caller's
/// own descriptors.
fn own_fd(dir: &[u8], name: &[u8], nspid: &[u8]) -> Option<i32> {
    let rest = dir.strip_prefix(b"/proc/")?;
    let (who, tail) = match rest.iter().position(|b| *b == b'/') {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => return None,
    };
    if tail != b"/fd" || who.is_empty() || who != nspid {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// "/workspace/a/b" -> "a/b"; paths elsewhere -> None.
fn workspace_relative(abs: &[u8]) -> Option<String> {
    let ws = WORKSPACE.as_bytes();
    let rest = abs.strip_prefix(ws)?;
    let rest = match rest.first() {
        None => &[][..],
        Some(b'/') => rest.get(1..).unwrap_or_default(),
        Some(_) => return None,
    };
    let parts: Vec<&[u8]> = rest
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    Some(String::from_utf8_lossy(&parts.join(&b'/')).into_owned())
}

/// Splits off the last component, ignoring trailing slashes.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    let mut end = path.len();
    while end > 1 && path.get(end - 1) == Some(&b'/') {
        end -= 1;
    }
    let trimmed = path.get(..end).unwrap_or_default();
    match trimmed.iter().rposition(|b| *b == b'/') {
        Some(0) => (b"/", trimmed.get(1..).unwrap_or_default()),
        Some(i) => (
            trimmed.get(..i).unwrap_or_default(),
            trimmed.get(i + 1..).unwrap_or_default(),
        ),
        None => (b".", trimmed),
    }
}

fn open_path(path: &str, extra: i32) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid string; O_PATH opens nothing for reading.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens directory `path` as the sandbox sees it: absolute paths, `..` and symbolic links all
/// stay inside the sandbox's root, and /proc's magic links are not followed.
fn openat2_in_root(root: &OwnedFd, path: &[u8]) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid string and open_how struct with its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The target of `name` in `dir` when it is a symbolic link.
fn readlink_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0u8; MAX_PATH];
    // SAFETY: valid descriptor, string and buffer.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // Not a link, or nothing there yet: the name itself is the target.
            Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_relative() {
        assert_eq!(split(b"/workspace/a/b"), (&b"/workspace/a"[..], &b"b"[..]));
        assert_eq!(split(b"/x/"), (&b"/"[..], &b"x"[..]));
        assert_eq!(split(b"name"), (&b"."[..], &b"name"[..]));
        assert_eq!(
            workspace_relative(b"/workspace/a//./b").as_deref(),
            Some("a/b")
        );
        assert_eq!(workspace_relative(b"/workspace").as_deref(), Some(""));
        assert_eq!(workspace_relative(b"/workspaces/a"), None);
        assert_eq!(workspace_relative(b"/tmp/a"), None);
    }

    #[test]
    fn own_descriptors_through_proc() {
        assert_eq!(own_fd(b"/proc/12/fd", b"2", b"12"), Some(2));
        assert_eq!(own_fd(b"/proc/13/fd", b"2", b"12"), None);
        assert_eq!(own_fd(b"/proc/12/fdinfo", b"1", b"12"), None);
        assert_eq!(own_fd(b"/workspace/fd", b"1", b"12"), None);
    }
}
