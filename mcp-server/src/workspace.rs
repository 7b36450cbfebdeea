//! A named workspace: its root held open, its sandbox, what the agent last read (to refuse
//! edits of files that changed since), and its background processes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

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
        check_name(name)?;
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

/// A workspace name: what tool arguments, audit records and directory names can all carry.
pub fn check_name(name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ToolError::Invalid(format!(
            "workspace name {name:?}: use up to 64 letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

/// SHA-256 of `bytes`, hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Makes new workspaces (for `git_clone`): a directory under `dir`, a sandbox shaped like
/// `template`.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// The sandbox every new workspace gets (its `workspace` and `name` are replaced).
    pub template: SandboxConfig,
    /// Where new workspaces are made.
    pub dir: PathBuf,
}

/// The workspaces of one server, by name.
#[derive(Debug)]
pub struct Registry {
    map: RwLock<BTreeMap<String, Arc<Workspace>>>,
    first: String,
    spawner: Option<Spawner>,
}

impl Registry {
    /// `workspaces` (the first is the default), and a way to make more.
    pub fn new(
        workspaces: Vec<Arc<Workspace>>,
        spawner: Option<Spawner>,
    ) -> Result<Registry, ToolError> {
        let first = workspaces
            .first()
            .map(|w| w.name.clone())
            .ok_or_else(|| ToolError::Invalid("no workspace".into()))?;
        let mut map = BTreeMap::new();
        for w in workspaces {
            let name = w.name.clone();
            if map.insert(name.clone(), w).is_some() {
                return Err(ToolError::Invalid(format!(
                    "two workspaces are named {name}"
                )));
            }
        }
        Ok(Registry {
            map: RwLock::new(map),
            first,
            spawner,
        })
    }

    /// The workspace named `name`, or the default one.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<Workspace>, ToolError> {
        let name = name.unwrap_or(&self.first);
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .ok_or_else(|| ToolError::NotFound(format!("no workspace named {name:?}")))
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.map
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A new, empty workspace directory named `name` and the sandbox configurations for it:
    /// one without protected paths (for the clone that fills it: only git runs, with hooks and
    /// templates off, and what it writes comes from the remote, not the agent), and the
    /// ordinary one.
    pub fn prepare(
        &self,
        name: &str,
    ) -> Result<(PathBuf, SandboxConfig, SandboxConfig), ToolError> {
        let Some(spawner) = &self.spawner else {
            return Err(ToolError::Invalid(
                "this server makes no new workspaces (start it with a workspaces directory)".into(),
            ));
        };
        check_name(name)?;
        if self.get(Some(name)).is_ok() {
            return Err(ToolError::Invalid(format!(
                "a workspace named {name} exists"
            )));
        }
        std::fs::create_dir_all(&spawner.dir)
            .map_err(|e| ToolError::Io(format!("cannot create {}: {e}", spawner.dir.display())))?;
        let dir = spawner.dir.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| ToolError::Invalid(format!("cannot create workspace {name}: {e}")))?;
        let mut normal = spawner.template.clone();
        normal.workspace = dir.clone();
        normal.name = name.to_owned();
        let mut filling = normal.clone();
        filling.protected = Vec::new();
        Ok((dir, filling, normal))
    }

    /// Adds a workspace.
    pub fn insert(&self, ws: Arc<Workspace>) {
        if let Ok(mut m) = self.map.write() {
            m.insert(ws.name.clone(), ws);
        }
    }
}
