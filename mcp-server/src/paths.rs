//! Paths an agent names, resolved inside the workspace by the kernel, never by check-then-use.
//!
//! Every open starts from a descriptor of the workspace root and goes through `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: a `..`, an absolute symlink or a symlink swapped
//! in during the call that would leave the workspace fails in the kernel (EXDEV), at the moment
//! of the open. Operations then act on the descriptors they opened. The path policy decides on
//! is where the descriptor really is (read back from the kernel), so a symlink cannot dress a
//! protected path up as an ordinary one.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::ToolError;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// The workspace root, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (a directory) as a root.
    pub fn open(path: &Path) -> Result<Root, ToolError> {
        let path = path
            .canonicalize()
            .map_err(|e| ToolError::Invalid(format!("workspace {}: {e}", path.display())))?;
        let fd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ToolError::Invalid(format!("workspace {}: {e}", path.display())))?;
        Ok(Root { fd, path })
    }

    /// The root's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` beneath the root with `flags` (and `mode` when creating).
    pub fn open_at(&self, rel: &str, flags: OFlags, mode: u32) -> Result<OwnedFd, ToolError> {
        let rel = if rel.is_empty() { "." } else { rel };
        loop {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
                BENEATH,
            ) {
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(errno(rel, e)),
                Ok(fd) => return Ok(fd),
            }
        }
    }

    /// Opens the directory that holds `rel` and returns it with the last component, for
    /// calls that create, replace or remove a name (which must not follow it).
    pub fn parent(&self, rel: &str) -> Result<(OwnedFd, String), ToolError> {
        let (dir, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", rel),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(ToolError::Invalid(format!("{rel:?} does not name a file")));
        }
        let fd = self.open_at(dir, OFlags::PATH | OFlags::DIRECTORY, 0)?;
        Ok((fd, name.to_owned()))
    }

    /// Reopens a directory held as an `O_PATH` descriptor (from [`Root::parent`]) for the calls
    /// that change names in it, from where the kernel says it is now, beneath the root again.
    pub fn reopen_dir(&self, dir: impl AsFd) -> Result<OwnedFd, ToolError> {
        self.open_at(&self.where_is(dir)?, OFlags::RDONLY | OFlags::DIRECTORY, 0)
    }

    /// Where `fd` is, relative to the root, as the kernel sees it now.
    pub fn where_is(&self, fd: impl AsFd) -> Result<String, ToolError> {
        let link = rustix::fs::readlinkat(
            rustix::fs::CWD,
            format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
            ),
            Vec::new(),
        )
        .map_err(|e| ToolError::Io(format!("cannot read where a file is: {e}")))?;
        let real = PathBuf::from(link.to_string_lossy().into_owned());
        let rel = real
            .strip_prefix(&self.path)
            .map_err(|_| ToolError::Invalid("the path resolves outside the workspace".into()))?;
        Ok(rel.to_string_lossy().into_owned())
    }

    /// The workspace-relative path `name` in directory `dir` really has.
    pub fn real_child(&self, dir: impl AsFd, name: &str) -> Result<String, ToolError> {
        let base = self.where_is(dir)?;
        Ok(if base.is_empty() {
            name.to_owned()
        } else {
            format!("{base}/{name}")
        })
    }
}

/// An agent's path, normalised: relative to the workspace, `/`-separated, no `.` or `..`.
/// Absolute paths are accepted only under the workspace's name inside the sandbox
/// (`/workspace/...`), so that paths copied from command output work.
pub fn normalise(raw: &str) -> Result<String, ToolError> {
    if raw.contains('\0') {
        return Err(ToolError::Invalid("the path contains a NUL byte".into()));
    }
    let rel = if let Some(rest) = raw.strip_prefix(cordon_sandbox::WORKSPACE) {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(outside(raw));
        }
        rest.trim_start_matches('/')
    } else if raw.starts_with('/') {
        return Err(outside(raw));
    } else {
        raw
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(outside(raw));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn outside(raw: &str) -> ToolError {
    ToolError::Outside(format!(
        "{raw:?} is outside the workspace; use a path relative to it"
    ))
}

/// A system error on `rel`, said plainly.
pub fn errno(rel: &str, e: Errno) -> ToolError {
    let shown = if rel.is_empty() || rel == "." {
        "the workspace root"
    } else {
        rel
    };
    match e {
        Errno::XDEV => ToolError::Outside(format!(
            "{shown} resolves outside the workspace (through .. or a symlink)"
        )),
        Errno::LOOP => ToolError::Outside(format!(
            "{shown} goes through a symlink loop or a magic link"
        )),
        Errno::NOENT => ToolError::NotFound(format!("{shown} does not exist")),
        Errno::NOTDIR => ToolError::Invalid(format!("a parent of {shown} is not a directory")),
        Errno::ISDIR => ToolError::Invalid(format!("{shown} is a directory")),
        Errno::EXIST => ToolError::Invalid(format!("{shown} already exists")),
        Errno::NOTEMPTY => ToolError::Invalid(format!("{shown} is a directory that is not empty")),
        Errno::ACCESS | Errno::PERM => ToolError::Io(format!("{shown}: permission denied")),
        e => ToolError::Io(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses_escapes() {
        assert_eq!(normalise("a/./b//c").unwrap(), "a/b/c");
        assert_eq!(normalise("a/../b").unwrap(), "b");
        assert_eq!(normalise("/workspace/src/x").unwrap(), "src/x");
        assert_eq!(normalise("/workspace").unwrap(), "");
        assert!(normalise("../x").is_err());
        assert!(normalise("a/../../x").is_err());
        assert!(normalise("/etc/passwd").is_err());
        assert!(normalise("/workspacefoo/x").is_err());
        assert!(normalise("a\0b").is_err());
    }
}
