//! A named workspace: its root held open, its sandbox, what the agent last read (to refuse
//! edits of files that changed since), and its background processes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cordon_sandbox::{Sandbox, SandboxConfig};

use crate::error::ToolError;
use crate::paths::Root;
use crate::shell::Processes;

/// One workspace an agent works in.
#[derive(Debug)]
pub struct Workspace {
    /// Its name in tool arguments and audit records.
    pub name: String,
    /// The directory, held open.
    pub root: Root,
    /// Where its commands run.
    pub sandbox: Sandbox,
    /// SHA-256 of each file's content when the agent last read or wrote it, by path.
    seen: Mutex<HashMap<String, String>>,
    /// Background processes started in it.
    pub processes: Processes,
}

impl Workspace {
    /// A workspace named `name` with a sandbox built from `config`.
    pub fn new(name: &str, config: SandboxConfig) -> Result<Arc<Workspace>, ToolError> {
        let root = Root::open(&config.workspace)?;
        let sandbox = Sandbox::new(config)?;
        Ok(Arc::new(Workspace {
            name: name.to_owned(),
            root,
            sandbox,
            seen: Mutex::new(HashMap::new()),
            processes: Processes::default(),
        }))
    }

    /// The workspace's host directory.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Remembers the content the agent saw at `path`.
    pub fn saw(&self, path: &str, digest: String) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(path.to_owned(), digest);
        }
    }

    /// The digest the agent last saw at `path`, if it read it.
    pub fn last_seen(&self, path: &str) -> Option<String> {
        self.seen.lock().ok().and_then(|s| s.get(path).cloned())
    }

    /// Forgets `path` (deleted or moved).
    pub fn forget(&self, path: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(path);
        }
    }
}

/// SHA-256 of `bytes`, hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
