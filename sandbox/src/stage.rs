//! The host-side staging directory of a sandbox: the mount point of the new root and the small
//! files bind-mounted into it (a passwd with the sandbox user, hosts, empty masks). Created once
//! per [`crate::Sandbox`], private to its owner (0700), removed on drop.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SandboxError;

static NEXT: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub(crate) struct Stage {
    dir: PathBuf,
}

impl Stage {
    pub(crate) fn create(uid: u32, gid: u32) -> Result<Stage, SandboxError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "cordon-stage-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let shown = dir.display().to_string();
        let host = |e| SandboxError::host(format!("creating {shown}"), e);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(host)?;
        let stage = Stage { dir };
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

impl Drop for Stage {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the sandbox stage");
        }
    }
}
