//! What each tool returns, as types: the structured content is serialized from them, and the
//! output schemas the server advertises are generated from the same types, so the two cannot
//! drift apart.

use schemars::JsonSchema;
use serde::Serialize;

/// `read_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadOut {
    /// Where the file really is, relative to the workspace root.
    pub path: String,
    /// The lines returned.
    pub content: String,
    /// First line returned, 1-based.
    pub start_line: u64,
    /// Last line returned.
    pub end_line: u64,
    /// Lines in the whole file.
    pub total_lines: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// Whether the byte bound cut the range short.
    pub truncated: bool,
}

/// One file of `read_many`: its content, or why it could not be read.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ReadManyItem {
    /// Read.
    Read(ReadOut),
    /// Not read.
    Failed {
        /// The path as asked.
        path: String,
        /// Why.
        error: String,
    },
}

/// `read_many`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadManyOut {
    /// In the order asked.
    pub files: Vec<ReadManyItem>,
}

/// `write_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteOut {
    /// Where the file really is.
    pub path: String,
    /// Bytes written.
    pub bytes: u64,
    /// Whether the file is new.
    pub created: bool,
}

/// `edit_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EditOut {
    /// Where the file really is.
    pub path: String,
    /// The change as a unified diff.
    pub diff: String,
    /// Whether it was written (false for a dry run).
    pub applied: bool,
}

/// One entry of a listing.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    /// Relative to the workspace root.
    pub path: String,
    /// `file`, `dir`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size of a regular file.
    pub size: Option<u64>,
}

/// `list_dir`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOut {
    /// The directory listed.
    pub path: String,
    /// Its entries, depth first, by name.
    pub entries: Vec<Entry>,
    /// Whether the listing stopped at its bound.
    pub truncated: bool,
}

/// `tree`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TreeOut {
    /// The tree, one entry per line, indented by depth.
    pub tree: String,
    /// Whether it stopped at its bound.
    pub truncated: bool,
}

/// `find`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FindOut {
    /// Matching paths.
    pub paths: Vec<String>,
    /// Whether the search stopped at its bound.
    pub truncated: bool,
}

/// One `grep` match.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GrepMatch {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub line: u64,
    /// The line (at most 400 characters).
    pub text: String,
}

/// `grep`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GrepOut {
    /// Matches in this page.
    pub matches: Vec<GrepMatch>,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<u64>,
}

/// `file_info`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InfoOut {
    /// Relative to the workspace root.
    pub path: String,
    /// `file`, `dir`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes.
    pub size: i64,
    /// Permission bits, octal.
    pub mode: String,
    /// Last modification, RFC 3339.
    pub modified: Option<String>,
    /// A symlink's target, as stored.
    pub symlink_target: Option<String>,
}

/// `make_dir` and `delete_path`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathOut {
    /// The path acted on.
    pub path: String,
}

/// `move_path` and `copy_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MoveOut {
    /// The source.
    pub from: String,
    /// The destination.
    pub to: String,
}

/// `copy_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CopyOut {
    /// The source.
    pub from: String,
    /// The destination.
    pub to: String,
    /// Regular files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// What a recursive copy left out: links and special files (at most 100 named).
    pub skipped: Vec<String>,
}

/// How a command ended.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ended {
    /// Exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether the timeout killed the tree.
    pub timed_out: bool,
    /// Whether a cancellation or `process_kill` killed the tree.
    pub killed: bool,
    /// Why it could not run, when it could not.
    pub error: Option<String>,
}

/// `exec`: the finished command, or, when it outlived the wait, the id of the process that
/// goes on (`running`). One object either way (clients require an object schema at the root).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecOut {
    /// Whether it still runs (then `id` names it for `process_read`, and `message` says so).
    pub running: bool,
    /// The background process, when it still runs.
    pub id: Option<u64>,
    /// What to do next, when it still runs.
    pub message: Option<String>,
    /// How it ended (all empty while it runs).
    #[serde(flatten)]
    pub ended: Ended,
    /// Standard output (head and tail kept past 64 KiB).
    pub stdout: String,
    /// Standard error (the same).
    pub stderr: String,
    /// Whether the sandbox's output cap was reached.
    pub truncated: bool,
    /// Wall-clock time, sandbox start included.
    pub duration_ms: u64,
}

/// `process_start`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StartOut {
    /// The process id.
    pub id: u64,
    /// What runs.
    pub argv: Vec<String>,
}

/// `process_read`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessReadOut {
    /// The process id.
    pub id: u64,
    /// Output from `offset`.
    pub output: String,
    /// Where this output starts.
    pub offset: u64,
    /// Where the next read starts.
    pub next_offset: u64,
    /// Bytes between the asked offset and `offset` that were no longer kept.
    pub skipped: u64,
    /// Whether it still runs.
    pub running: bool,
    /// How it ended, once it has.
    pub result: Option<Ended>,
}

/// `process_write`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessWriteOut {
    /// The process id.
    pub id: u64,
    /// Bytes the process's input took.
    pub bytes_written: u64,
    /// Whether all of them fit (false: the program is not reading; write the rest later).
    pub all_written: bool,
    /// Whether the input is now closed.
    pub closed: bool,
}

/// `process_kill`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KillOut {
    /// The process id.
    pub id: u64,
    /// Whether it was still running.
    pub was_running: bool,
    /// The signal sent: KILL, or the one forwarded to its process group.
    pub signal: String,
}

/// One background process.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessInfo {
    /// The process id.
    pub id: u64,
    /// What runs.
    pub argv: Vec<String>,
    /// Whether it still runs.
    pub running: bool,
    /// Seconds since it started.
    pub seconds: u64,
    /// Output so far.
    pub output_bytes: u64,
}

/// `process_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessListOut {
    /// The workspace's processes.
    pub processes: Vec<ProcessInfo>,
}

/// git tools that answer with git's own text.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GitOut {
    /// What git printed.
    pub output: String,
}

/// One commit of `git_log`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Commit {
    /// The full hash.
    pub commit: String,
    /// Author name.
    pub author: String,
    /// Author date, ISO 8601.
    pub date: String,
    /// First line of the message.
    pub subject: String,
}

/// `git_log`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogOut {
    /// Newest first.
    pub commits: Vec<Commit>,
}

/// `git_clone`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CloneOut {
    /// The new workspace's name.
    pub workspace: String,
    /// What was cloned.
    pub url: String,
    /// The new branch checked out, when one was asked for.
    pub branch: Option<String>,
}
