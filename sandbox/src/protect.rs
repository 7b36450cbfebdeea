//! Protected paths inside the workspace: the files policy's patterns (CI files, `.git/hooks`,
//! `.git/config`, ...), matched at every depth.
//!
//! Two mechanisms enforce them. Existing protected files and directories are bind-mounted
//! read-only over themselves when the sandbox starts, so no path trick (symlink, hard link,
//! `/proc/self/fd`) can write them and a mount point cannot be renamed or removed. Names that do
//! not exist yet are guarded by the seccomp supervisor (`notify`), which refuses to create a
//! protected path or a directory that holds them, and to rename anything into or out of one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

use crate::SandboxError;

/// The most directory entries the start-up scan visits before refusing to run: a scan that
/// cannot finish cannot promise the protected paths are covered.
pub const MAX_SCAN_ENTRIES: usize = 2_000_000;

/// Compiled protected-path patterns.
#[derive(Debug, Clone)]
pub struct Protected {
    set: GlobSet,
    /// Literal directory prefixes of the patterns (".github", ".github/workflows", ".git").
    holders: Vec<String>,
    empty: bool,
}

impl Protected {
    /// Compiles workspace-relative patterns: `dir/**` (anything under dir), `name` (that path),
    /// or any glob; each also matches at every depth.
    pub fn new(patterns: &[String]) -> Result<Protected, SandboxError> {
        let mut builder = GlobSetBuilder::new();
        let mut holders = Vec::new();
        for pattern in patterns {
            let pattern = pattern.trim_matches('/');
            if pattern.is_empty() || pattern.split('/').any(|c| c == "..") {
                return Err(SandboxError::Invalid(format!(
                    "protected pattern {pattern:?} is empty or contains '..'"
                )));
            }
            for glob in [pattern.to_owned(), format!("**/{pattern}")] {
                let glob = globset::GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        SandboxError::Invalid(format!("protected pattern {pattern:?}: {e}"))
                    })?;
                builder.add(glob);
            }
            let parts: Vec<&str> = pattern.split('/').collect();
            for i in 1..parts.len() {
                let prefix = parts.get(..i).unwrap_or_default().join("/");
                if !prefix.contains(['*', '?', '[', '{']) && !holders.contains(&prefix) {
                    holders.push(prefix);
                }
            }
        }
        let set = builder
            .build()
            .map_err(|e| SandboxError::Invalid(format!("protected patterns: {e}")))?;
        Ok(Protected {
            set,
            holders,
            empty: patterns.is_empty(),
        })
    }

    /// True when there is nothing to protect.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether the workspace-relative `path` is protected.
    pub fn is_protected(&self, path: &str) -> bool {
        !self.empty && self.set.is_match(path)
    }

    /// Whether `path` is, or could become, a directory holding protected paths (`.github`,
    /// `sub/.git`): creating, moving or replacing one could move protected files or make room to
    /// recreate them elsewhere.
    pub fn holds_protected(&self, path: &str) -> bool {
        self.holders.iter().any(|h| {
            path == h
                || path
                    .strip_suffix(h.as_str())
                    .is_some_and(|rest| rest.ends_with('/'))
        })
    }

    /// Whether everything under directory `path` is protected (`path` matches `dir/**`).
    fn covers_dir(&self, path: &str) -> bool {
        self.is_protected(&format!("{path}/\u{1}"))
    }

    /// Existing protected files and directories under `workspace`, as workspace-relative paths,
    /// outermost only. Symbolic links are neither followed nor returned: a mount onto one would
    /// land on its target.
    pub fn scan(&self, workspace: &Path) -> Result<Vec<PathBuf>, SandboxError> {
        let mut found = Vec::new();
        if self.empty {
            return Ok(found);
        }
        let mut stack = vec![PathBuf::new()];
        let mut visited = 0usize;
        while let Some(rel) = stack.pop() {
            let dir = workspace.join(&rel);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // A directory the caller cannot read holds nothing the sandbox can write either.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
                Err(e) => return Err(scan_error(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| scan_error(&dir, e))?;
                visited += 1;
                if visited > MAX_SCAN_ENTRIES {
                    return Err(SandboxError::Workspace {
                        path: workspace.to_owned(),
                        reason: format!(
                            "more than {MAX_SCAN_ENTRIES} entries: the protected-path scan \
                             cannot finish, so the sandbox refuses to start"
                        ),
                    });
                }
                let kind = entry.file_type().map_err(|e| scan_error(&dir, e))?;
                if kind.is_symlink() {
                    continue;
                }
                let child = rel.join(entry.file_name());
                let Some(text) = child.to_str() else {
                    // A name that is not UTF-8 cannot match a pattern, but may hold one below.
                    if kind.is_dir() {
                        stack.push(child);
                    }
                    continue;
                };
                if self.is_protected(text) || (kind.is_dir() && self.covers_dir(text)) {
                    found.push(child);
                } else if kind.is_dir() {
                    stack.push(child);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

fn scan_error(dir: &Path, e: io::Error) -> SandboxError {
    SandboxError::Workspace {
        path: dir.to_owned(),
        reason: format!("scanning for protected paths: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Protected {
        let patterns: Vec<String> = [
            ".github/workflows/**",
            ".git/hooks/**",
            ".git/config",
            ".gitlab-ci.yml",
            ".git/worktrees/*/config.worktree",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Protected::new(&patterns).unwrap()
    }

    #[test]
    fn matches_at_every_depth() {
        let p = protected();
        assert!(p.is_protected(".github/workflows/ci.yml"));
        assert!(p.is_protected("sub/repo/.github/workflows/ci.yml"));
        assert!(p.is_protected("a/.git/hooks/pre-commit"));
        assert!(p.is_protected(".git/config"));
        assert!(p.is_protected("x/.gitlab-ci.yml"));
        assert!(p.is_protected(".git/worktrees/wt/config.worktree"));
        assert!(!p.is_protected(".github/workflows"));
        assert!(!p.is_protected("src/main.rs"));
        assert!(!p.is_protected(".git/configs"));
        assert!(!p.is_protected("a.gitlab-ci.yml"));
    }

    #[test]
    fn holders_are_the_literal_prefixes() {
        let p = protected();
        for path in [
            ".github",
            ".github/workflows",
            ".git",
            "sub/.git",
            "a/.git/hooks",
        ] {
            assert!(p.holds_protected(path), "{path}");
        }
        for path in ["src", "x.github", ".gitx", ".git/objects"] {
            assert!(!p.holds_protected(path), "{path}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Protected::new(&["../x".into()]).is_err());
        assert!(Protected::new(&["".into()]).is_err());
        assert!(Protected::new(&["a/[".into()]).is_err());
    }
}
