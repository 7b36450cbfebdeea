//! The host-side staging directory of a sandbox: the mount point of the new root and the small
//! files bind-mounted into it (a passwd with the sandbox user, hosts, empty masks). Created once
//! per [`crate::Sandbox`], private to its owner (0700), removed on drop.
//!
//! A process killed outright (SIGKILL, OOM) cannot remove its stage, so every live stage holds
//! an exclusive `flock` on its own directory, which the kernel drops when the process dies
//! however it dies. Creating a stage first sweeps the stages whose lock is free. Locks, unlike
//! pids, mean the same in every pid namespace that shares the directory.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::SandboxError;

static NEXT: AtomicU64 = AtomicU64::new(0);

const PREFIX: &str = "cordon-stage-";

/// A stage this young is left alone by the sweep even when unlocked: its creator may not have
/// taken the lock yet.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(60);

/// Attempts at a fresh name before giving up (each collision is with a leftover or a racer).
const NAME_ATTEMPTS: u32 = 16;

#[derive(Debug)]
pub(crate) struct Stage {
    dir: PathBuf,
    /// The open directory, locked while this stage lives.
    _lock: fs::File,
}

impl Stage {
    pub(crate) fn create(uid: u32, gid: u32) -> Result<Stage, SandboxError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        Stage::create_in(&base, uid, gid)
    }

    fn create_in(base: &Path, uid: u32, gid: u32) -> Result<Stage, SandboxError> {
        sweep(base);
        let (dir, lock) = fresh_dir(base)?;
        let stage = Stage { dir, _lock: lock };
        let shown = stage.dir.display().to_string();
        let host = |e| SandboxError::host(format!("creating {shown}"), e);
        let w = |name: &str, text: String| {
            let path = stage.dir.join(name);
            fs::write(&path, text)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o644)))
                .map_err(|e| SandboxError::host(format!("writing {}", path.display()), e))
        };
        fs::create_dir(stage.root()).map_err(host)?;
        fs::create_dir(stage.dir.join("emptydir")).map_err(host)?;
        w(
            "passwd",
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                 cordon:x:{uid}:{gid}:cordon sandbox:/tmp:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        )?;
        w(
            "group",
            format!("root:x:0:\ncordon:x:{gid}:\nnogroup:x:65534:\n"),
        )?;
        w(
            "hosts",
            "127.0.0.1\tlocalhost cordon\n::1\tlocalhost ip6-localhost\n".into(),
        )?;
        w("hostname", "cordon\n".into())?;
        w("empty", String::new())?;
        Ok(stage)
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Makes a new private directory under `base` with a name nobody holds, and locks it.
fn fresh_dir(base: &Path) -> Result<(PathBuf, fs::File), SandboxError> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..NAME_ATTEMPTS {
        let dir = base.join(format!(
            "{PREFIX}{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            random_u32(),
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                let lock = open_dir(&dir)
                    .and_then(|f| lock(&f, false).map(|()| f))
                    .map_err(|e| SandboxError::host(format!("locking {}", dir.display()), e))?;
                return Ok((dir, lock));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => {
                return Err(SandboxError::host(format!("creating {}", dir.display()), e));
            }
        }
    }
    Err(SandboxError::host(
        format!("creating a stage under {}", base.display()),
        last,
    ))
}

/// A random number for names, so nobody can pre-create the next stage's name; with the
/// pid and counter around it, a failure of getrandom only makes the name guessable.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into a live buffer.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    u32::from_ne_bytes(b)
}

fn open_dir(dir: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
}

/// An exclusive flock; `try_only` fails at once with `WouldBlock` when another holds it.
fn lock(f: &fs::File, try_only: bool) -> io::Result<()> {
    let op = if try_only {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_EX
    };
    // SAFETY: flock on a descriptor the File owns.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the stages under `base` left by processes that died without cleaning up: ours (same
/// owner), not a link, older than [`SWEEP_MIN_AGE`], and not locked. Best effort: a stage that
/// cannot be inspected or removed is left and logged.
fn sweep(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= SWEEP_MIN_AGE);
        if !meta.is_dir() || meta.uid() != me || !old {
            continue;
        }
        let Ok(f) = open_dir(&path) else { continue };
        if lock(&f, true).is_err() {
            continue; // Alive (or not ours to judge).
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => tracing::debug!(dir = %path.display(), "removed a stale sandbox stage"),
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove a stale sandbox stage");
            }
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the sandbox stage");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let then = std::time::SystemTime::now() - by;
        open_dir(path).unwrap().set_modified(then).unwrap();
    }

    #[test]
    fn sweeps_only_old_unlocked_stages() {
        let base = tempfile::tempdir().unwrap();
        let stale = base.path().join(format!("{PREFIX}1-0"));
        let young = base.path().join(format!("{PREFIX}2-0"));
        let held = base.path().join(format!("{PREFIX}3-0"));
        let other = base.path().join("not-a-stage");
        for d in [&stale, &young, &held, &other] {
            fs::create_dir_all(d.join("root")).unwrap();
        }
        let hour = Duration::from_secs(3600);
        age(&stale, hour);
        age(&held, hour);
        age(&other, hour);
        let holder = open_dir(&held).unwrap();
        lock(&holder, false).unwrap();
        let stage = Stage::create_in(base.path(), 1000, 1000).unwrap();
        assert!(!stale.exists(), "a dead process's stage is removed");
        assert!(young.exists(), "a stage being created is left alone");
        assert!(held.exists(), "a live stage is left alone");
        assert!(other.exists(), "only stages are swept");
        // The new stage is locked: a sweep cannot take it, even once old.
        age(&stage.dir, hour);
        sweep(base.path());
        assert!(stage.dir.join("passwd").exists());
        let dir = stage.dir.clone();
        drop(stage);
        assert!(!dir.exists());
    }

    #[test]
    fn names_never_collide_with_leftovers() {
        let base = tempfile::tempdir().unwrap();
        let a = Stage::create_in(base.path(), 1000, 1000).unwrap();
        let b = Stage::create_in(base.path(), 1000, 1000).unwrap();
        assert_ne!(a.dir, b.dir);
        assert!(
            a.dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{PREFIX}{}-", std::process::id()))
        );
    }
}
