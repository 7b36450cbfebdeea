//! The seccomp supervisor: the calls that create or move filesystem names (mkdir, mknod,
//! symlink, link, rename, open with O_CREAT) are stopped by the filter and checked here against
//! the protected paths before the kernel runs them.
//!
//! The supervisor resolves the target as the sandbox sees it: from the caller's working
//! directory or directory descriptor, inside the sandbox's root (`/proc/PID/root` with
//! `RESOLVE_IN_ROOT`), following symbolic links in the parent directories and, where the call
//! follows it, in the last component. A target that is protected, or that would move or replace
//! a directory holding protected paths, gets EACCES.
//!
//! Limitation, stated in SECURITY.md: an allowed call continues in the kernel
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), which reads the path again. A multi-threaded program
//! that rewrites the path buffer between the check and the call can race it. Existing protected
//! paths do not depend on this check (they are read-only mounts); it guards names that do not
//! exist yet.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crate::SandboxError;
use crate::config::WORKSPACE;
use crate::protect::Protected;

const MAX_PATH: usize = 4096;
const MAX_LINKS: usize = 40;

/// A running supervisor thread for one sandboxed run.
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

    /// Stops the thread and returns how many calls it refused.
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

struct Session {
    listener: OwnedFd,
    protected: Protected,
    denials: Arc<AtomicU64>,
}

/// The verdict for one call.
enum Verdict {
    Continue,
    Deny(i32),
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
        let verdict = match self.decide(&req) {
            Ok(v) => v,
            Err(e) => Verdict::Deny(e.raw_os_error().unwrap_or(libc::EACCES)),
        };
        // Whatever we read must still belong to the same, live request.
        let mut id = req.id;
        // SAFETY: ID_VALID reads a u64.
        let valid = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &mut id as *mut u64,
            )
        } == 0;
        if !valid {
            return;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match verdict {
            Verdict::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Verdict::Deny(errno) => {
                if errno == libc::EACCES {
                    self.denials.fetch_add(1, Ordering::Relaxed);
                }
                resp.error = -errno;
            }
        }
        // SAFETY: SEND reads a valid seccomp_notif_resp.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
    }

    fn decide(&self, req: &libc::seccomp_notif) -> io::Result<Verdict> {
        let a = req.data.args;
        let pid = req.pid;
        let at = |i: usize| a.get(i).map_or(libc::AT_FDCWD, |v| *v as i32);
        let arg = |i: usize| a.get(i).copied().unwrap_or(0);
        let cwd = libc::AT_FDCWD;
        let nr = i64::from(req.data.nr);
        let create = |dfd: i32, ptr: u64, kind: Kind| -> io::Result<Verdict> {
            let path = read_string(pid, ptr)?;
            self.check_create(pid, dfd, &path, kind)
        };
        match nr {
            libc::SYS_mkdir => create(cwd, arg(0), Kind::Dir),
            libc::SYS_mkdirat => create(at(0), arg(1), Kind::Dir),
            libc::SYS_mknod => create(cwd, arg(0), Kind::Other),
            libc::SYS_mknodat => create(at(0), arg(1), Kind::Other),
            libc::SYS_symlink => create(cwd, arg(1), Kind::Other),
            libc::SYS_symlinkat => create(at(1), arg(2), Kind::Other),
            libc::SYS_creat => create(cwd, arg(0), Kind::File { follow: true }),
            libc::SYS_open | libc::SYS_openat => {
                let (dfd, ptr, flags) = if nr == libc::SYS_open {
                    (cwd, arg(0), arg(1) as i32)
                } else {
                    (at(0), arg(1), arg(2) as i32)
                };
                let follow = flags & (libc::O_NOFOLLOW | libc::O_EXCL) == 0;
                create(dfd, ptr, Kind::File { follow })
            }
            libc::SYS_link | libc::SYS_linkat => {
                let (odfd, optr, ndfd, nptr, follow) = if nr == libc::SYS_link {
                    (cwd, arg(0), cwd, arg(1), false)
                } else {
                    let flags = arg(4) as i32;
                    if flags & libc::AT_EMPTY_PATH != 0 {
                        return Ok(Verdict::Deny(libc::EPERM));
                    }
                    (
                        at(0),
                        arg(1),
                        at(2),
                        arg(3),
                        flags & libc::AT_SYMLINK_FOLLOW != 0,
                    )
                };
                let old = read_string(pid, optr)?;
                if let Verdict::Deny(e) = self.check_existing(pid, odfd, &old, follow, false)? {
                    return Ok(Verdict::Deny(e));
                }
                create(ndfd, nptr, Kind::Other)
            }
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => {
                let (odfd, optr, ndfd, nptr) = if nr == libc::SYS_rename {
                    (cwd, arg(0), cwd, arg(1))
                } else {
                    (at(0), arg(1), at(2), arg(3))
                };
                let old = read_string(pid, optr)?;
                if let Verdict::Deny(e) = self.check_existing(pid, odfd, &old, false, true)? {
                    return Ok(Verdict::Deny(e));
                }
                let new = read_string(pid, nptr)?;
                if let Verdict::Deny(e) = self.check_existing(pid, ndfd, &new, false, true)? {
                    return Ok(Verdict::Deny(e));
                }
                Ok(Verdict::Continue)
            }
            _ => Ok(Verdict::Deny(libc::ENOSYS)),
        }
    }

    /// A new name at `path`: refused when it is protected, or when it is a non-directory at a
    /// name that holds protected paths (a symlink `.github` would redirect them).
    fn check_create(&self, pid: u32, dfd: i32, path: &[u8], kind: Kind) -> io::Result<Verdict> {
        let follow = matches!(kind, Kind::File { follow: true });
        let Some(rel) = self.locate(pid, dfd, path, follow)? else {
            return Ok(Verdict::Continue);
        };
        let holder = self.protected.holds_protected(&rel);
        if self.protected.is_protected(&rel) || (holder && !matches!(kind, Kind::Dir)) {
            tracing::info!(path = %rel, "refused creating a protected path");
            return Ok(Verdict::Deny(libc::EACCES));
        }
        Ok(Verdict::Continue)
    }

    /// An existing name used as a link source or a rename source or target.
    fn check_existing(
        &self,
        pid: u32,
        dfd: i32,
        path: &[u8],
        follow: bool,
        structural: bool,
    ) -> io::Result<Verdict> {
        let Some(rel) = self.locate(pid, dfd, path, follow)? else {
            return Ok(Verdict::Continue);
        };
        if self.protected.is_protected(&rel)
            || (structural && (rel.is_empty() || self.protected.holds_protected(&rel)))
        {
            tracing::info!(path = %rel, "refused moving or linking a protected path");
            return Ok(Verdict::Deny(libc::EACCES));
        }
        Ok(Verdict::Continue)
    }

    /// The workspace-relative path the call would act on, or `None` outside the workspace.
    fn locate(&self, pid: u32, dfd: i32, path: &[u8], follow: bool) -> io::Result<Option<String>> {
        if path.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let root = open_path(&proc.join("root"), libc::O_DIRECTORY)?;
        let mut full: Vec<u8> = if path.first() == Some(&b'/') {
            path.to_vec()
        } else {
            let base = if dfd == libc::AT_FDCWD {
                proc.join("cwd")
            } else {
                proc.join("fd").join(dfd.to_string())
            };
            let mut b = std::fs::read_link(base)?.into_os_string().into_vec();
            b.push(b'/');
            b.extend_from_slice(path);
            b
        };
        for _ in 0..MAX_LINKS {
            let (parent, name) = split(&full);
            if name.is_empty() || name == b"." || name == b".." {
                // Names no call can create; the kernel answers these itself.
                return Ok(None);
            }
            let dir = openat2_in_root(&root, parent)?;
            let real = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
            let mut target = real.into_os_string().into_vec();
            if follow && let Some(link) = readlink_at(&dir, name)? {
                full = if link.first() == Some(&b'/') {
                    link
                } else {
                    target.push(b'/');
                    target.extend_from_slice(&link);
                    target
                };
                continue;
            }
            target.push(b'/');
            target.extend_from_slice(name);
            return Ok(workspace_relative(&target));
        }
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File { follow: bool },
    Other,
}

trait IntoVec {
    fn into_vec(self) -> Vec<u8>;
}

impl IntoVec for std::ffi::OsString {
    fn into_vec(self) -> Vec<u8> {
        std::os::unix::ffi::OsStringExt::into_vec(self)
    }
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
    // Normalise "a//b" and "a/./b" the way the kernel walks them.
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in rest.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            _ => parts.push(c),
        }
    }
    let joined = parts.join(&b'/');
    Some(String::from_utf8_lossy(&joined).into_owned())
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

fn open_path(path: &Path, extra: i32) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
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
/// stay inside the sandbox's root.
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
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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

/// Reads a NUL-terminated path from the caller's memory.
fn read_string(pid: u32, addr: u64) -> io::Result<Vec<u8>> {
    let mem = File::open(format!("/proc/{pid}/mem"))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    let mut at = addr;
    while out.len() < MAX_PATH {
        // Never read across a page boundary in one go: the next page may be unmapped.
        let to_page = 4096 - (at % 4096) as usize;
        let want = to_page.min(chunk.len());
        let buf = chunk.get_mut(..want).unwrap_or_default();
        let n = mem.read_at(buf, at)?;
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

#[allow(dead_code)]
fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
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
}
