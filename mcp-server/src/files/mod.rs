//! The file tools. Every path goes through [`crate::paths`]: opened beneath the workspace root
//! by the kernel, and decided by the `files` policy on where it really is.

use std::io::Read;
use std::os::fd::OwnedFd;

use cordon_policy::input::FileOp;
use rustix::fs::OFlags;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ToolError;
use crate::guard::Guard;
use crate::workspace::Workspace;

/// Largest file the tools read or edit whole.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Default byte bound of one read.
pub(super) const DEFAULT_READ_BYTES: u64 = 256 << 10;

/// Reads a file, or a range of its lines.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// Path relative to the workspace root.
    pub path: String,
    /// First line to return, 1-based.
    pub start_line: Option<u64>,
    /// Last line to return, inclusive.
    pub end_line: Option<u64>,
    /// At most this many bytes of content (default 256 KiB).
    pub max_bytes: Option<u64>,
}

/// Reads several files; each one fails or succeeds on its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadManyArgs {
    /// Paths relative to the workspace root (at most 100).
    pub paths: Vec<String>,
    /// At most this many bytes of each file (default 64 KiB).
    pub max_bytes: Option<u64>,
}

/// Writes a whole file, atomically.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// Path relative to the workspace root.
    pub path: String,
    /// The new content.
    pub content: String,
    /// Create missing parent directories.
    #[serde(default)]
    pub create_dirs: bool,
}

/// One exact replacement.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    /// The text to find, exactly (whitespace included).
    pub old_text: String,
    /// What replaces it.
    pub new_text: String,
    /// How many times `old_text` must occur (default 1); every occurrence is replaced.
    pub expected_count: Option<usize>,
}

/// Edits a file by exact replacements.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    /// Path relative to the workspace root.
    pub path: String,
    /// Replacements, applied in order.
    pub edits: Vec<Replacement>,
    /// Return the diff without writing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Lists a directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Directory relative to the workspace root (default: the root).
    #[serde(default)]
    pub path: String,
    /// How deep to go (default 1, at most 10).
    pub depth: Option<usize>,
    /// Include files that .gitignore excludes, and hidden files.
    #[serde(default)]
    pub all: bool,
}

/// Finds paths by glob.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    /// A glob matched against workspace-relative paths, e.g. `src/**/*.rs`.
    pub pattern: String,
    /// Directory to search (default: the root).
    #[serde(default)]
    pub path: String,
}

/// Searches file contents by regular expression.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrepArgs {
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// Directory or file to search (default: the root).
    #[serde(default)]
    pub path: String,
    /// Only files whose path matches this glob.
    pub glob: Option<String>,
    /// Match regardless of case.
    #[serde(default)]
    pub ignore_case: bool,
    /// Skip this many matches (paging).
    #[serde(default)]
    pub offset: usize,
    /// At most this many matches (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One path.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Path relative to the workspace root.
    pub path: String,
}

/// Deletes a file or directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Path relative to the workspace root.
    pub path: String,
    /// Delete a directory and everything in it.
    #[serde(default)]
    pub recursive: bool,
}

/// Moves a path.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveArgs {
    /// Source, relative to the workspace root.
    pub from: String,
    /// Destination, relative to the workspace root; must not exist.
    pub to: String,
}

/// Copies a file, or a directory and everything in it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyArgs {
    /// Source, relative to the workspace root.
    pub from: String,
    /// Destination, relative to the workspace root; must not exist.
    pub to: String,
    /// Copy a directory and everything in it (regular files and directories; links and other
    /// special files are skipped and listed).
    #[serde(default)]
    pub recursive: bool,
}

pub(super) fn read_fd(fd: OwnedFd, limit: u64) -> Result<(Vec<u8>, u64), ToolError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| ToolError::Io(e.to_string()))?;
    if stat.st_mode & libc_mode::S_IFMT != libc_mode::S_IFREG {
        return Err(ToolError::Invalid("not a regular file".into()));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let mut file = std::fs::File::from(fd);
    let mut buf = Vec::new();
    (&mut file)
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| ToolError::Io(e.to_string()))?;
    Ok((buf, size))
}

/// File-type bits, without a libc dependency here.
pub(super) mod libc_mode {
    pub const S_IFMT: u32 = 0o170_000;
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFDIR: u32 = 0o040_000;
    pub const S_IFLNK: u32 = 0o120_000;
}

/// Opens `rel` for reading and checks the files policy on where it really is.
pub(super) fn open_read(
    ws: &Workspace,
    guard: &Guard,
    rel: &str,
) -> Result<(OwnedFd, String), ToolError> {
    let fd = ws
        .root
        .open_at(rel, OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK, 0)?;
    let real = ws.root.where_is(&fd)?;
    guard.file(&ws.name, FileOp::Read, &real, None)?;
    Ok((fd, real))
}

mod ops;
mod read;
mod search;
mod write;

pub use ops::{copy, delete, info, rename};
pub use read::{read, read_many};
pub use search::{find, grep, list, tree};
pub use write::{edit, mkdir, write};
