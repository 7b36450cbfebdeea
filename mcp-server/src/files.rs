//! The file tools. Every path goes through [`crate::paths`]: opened beneath the workspace root
//! by the kernel, and decided by the `files` policy on where it really is.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use cordon_policy::input::FileOp;
use rustix::fs::{AtFlags, Mode, OFlags};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{
    EditOut, Entry, FindOut, GrepMatch, GrepOut, InfoOut, ListOut, MoveOut, PathOut, ReadManyItem,
    ReadManyOut, ReadOut, TreeOut, WriteOut,
};
use crate::paths::{errno, normalise};
use crate::workspace::{Workspace, digest};

/// Largest file the tools read or edit whole.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Default byte bound of one read.
const DEFAULT_READ_BYTES: u64 = 256 << 10;

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

/// Moves or copies a path.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveArgs {
    /// Source, relative to the workspace root.
    pub from: String,
    /// Destination, relative to the workspace root; must not exist.
    pub to: String,
}

fn read_fd(fd: OwnedFd, limit: u64) -> Result<(Vec<u8>, u64), ToolError> {
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
mod libc_mode {
    pub const S_IFMT: u32 = 0o170_000;
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFDIR: u32 = 0o040_000;
    pub const S_IFLNK: u32 = 0o120_000;
}

/// Opens `rel` for reading and checks the files policy on where it really is.
fn open_read(ws: &Workspace, guard: &Guard, rel: &str) -> Result<(OwnedFd, String), ToolError> {
    let fd = ws
        .root
        .open_at(rel, OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK, 0)?;
    let real = ws.root.where_is(&fd)?;
    guard.file(&ws.name, FileOp::Read, &real, None)?;
    Ok((fd, real))
}

/// `read_file`.
pub fn read(ws: &Workspace, guard: &Guard, args: ReadArgs) -> Result<ReadOut, ToolError> {
    let rel = normalise(&args.path)?;
    let (fd, real) = open_read(ws, guard, &rel)?;
    let (bytes, size) = read_fd(fd, MAX_FILE_BYTES)?;
    if size > MAX_FILE_BYTES && args.start_line.is_none() {
        return Err(ToolError::Invalid(format!(
            "{rel} is {size} bytes; read it by line range (start_line, end_line) or search it with grep"
        )));
    }
    if bytes.contains(&0) {
        return Err(ToolError::Invalid(format!("{rel} is a binary file")));
    }
    ws.saw(&real, digest(&bytes));
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len() as u64;
    let start = args.start_line.unwrap_or(1).max(1);
    let end = args.end_line.unwrap_or(total).min(total);
    let max = args
        .max_bytes
        .unwrap_or(DEFAULT_READ_BYTES)
        .clamp(1, MAX_FILE_BYTES);
    let mut content = String::new();
    let mut last = start.saturating_sub(1);
    let mut truncated = false;
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        if n < start || n > end {
            continue;
        }
        if (content.len() + line.len()) as u64 > max {
            truncated = true;
            break;
        }
        content.push_str(line);
        last = n;
    }
    Ok(ReadOut {
        path: real,
        content,
        start_line: start,
        end_line: last,
        total_lines: total,
        size,
        truncated,
    })
}

/// `read_many`.
pub fn read_many(
    ws: &Workspace,
    guard: &Guard,
    args: ReadManyArgs,
) -> Result<ReadManyOut, ToolError> {
    if args.paths.len() > 100 {
        return Err(ToolError::Invalid("at most 100 paths at once".into()));
    }
    let files: Vec<ReadManyItem> = args
        .paths
        .iter()
        .map(|p| {
            let r = read(
                ws,
                guard,
                ReadArgs {
                    path: p.clone(),
                    start_line: None,
                    end_line: None,
                    max_bytes: Some(args.max_bytes.unwrap_or(64 << 10)),
                },
            );
            match r {
                Ok(v) => ReadManyItem::Read(v),
                Err(e) => ReadManyItem::Failed {
                    path: p.clone(),
                    error: e.to_string(),
                },
            }
        })
        .collect();
    Ok(ReadManyOut { files })
}

/// Creates missing directories down to `rel` (each level beneath the root, each decided).
fn make_dirs(ws: &Workspace, guard: &Guard, rel: &str) -> Result<(), ToolError> {
    let mut at = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        let next = if at.is_empty() {
            part.to_owned()
        } else {
            format!("{at}/{part}")
        };
        let dir = ws.root.open_at(&at, OFlags::PATH | OFlags::DIRECTORY, 0)?;
        let real = ws.root.real_child(&dir, part)?;
        match rustix::fs::statat(&dir, part, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {
                guard.file(&ws.name, FileOp::Mkdir, &real, None)?;
                let dirfd = ws
                    .root
                    .open_at(&at, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
                match rustix::fs::mkdirat(&dirfd, part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(errno(&next, e)),
                }
            }
            Err(e) => return Err(errno(&next, e)),
        }
        at = next;
    }
    Ok(())
}

/// Writes `content` to `rel` through a temporary file in the same directory and a rename, so
/// a reader sees the old or the new content, never half. The mode of a replaced file is kept.
fn write_atomic(
    ws: &Workspace,
    guard: &Guard,
    rel: &str,
    content: &[u8],
) -> Result<(String, bool), ToolError> {
    let (parent, name) = ws.root.parent(rel)?;
    let real = ws.root.real_child(&parent, &name)?;
    guard.file(&ws.name, FileOp::Write, &real, None)?;
    let dir = ws.root.open_at(
        &ws.root.where_is(&parent)?,
        OFlags::RDONLY | OFlags::DIRECTORY,
        0,
    )?;
    let existing = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
    if let Some(st) = &existing
        && st.st_mode & libc_mode::S_IFMT == libc_mode::S_IFDIR
    {
        return Err(ToolError::Invalid(format!("{rel} is a directory")));
    }
    let mode = existing
        .as_ref()
        .filter(|st| st.st_mode & libc_mode::S_IFMT == libc_mode::S_IFREG)
        .map_or(0o644, |st| st.st_mode & 0o7777);
    let tmp = format!(".{name}.cordon-{}", uuid::Uuid::new_v4().simple());
    let fd = rustix::fs::openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| errno(rel, e))?;
    let written = (|| {
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode));
        let mut f = std::fs::File::from(fd);
        f.write_all(content)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(ToolError::Io(format!("writing {rel}: {e}")));
    }
    if let Err(e) = rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_str()) {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(errno(rel, e));
    }
    ws.saw(&real, digest(content));
    Ok((real, existing.is_none()))
}

/// `write_file`.
pub fn write(ws: &Workspace, guard: &Guard, args: WriteArgs) -> Result<WriteOut, ToolError> {
    let rel = normalise(&args.path)?;
    if args.create_dirs
        && let Some((dir, _)) = rel.rsplit_once('/')
    {
        make_dirs(ws, guard, dir)?;
    }
    let (real, created) = write_atomic(ws, guard, &rel, args.content.as_bytes())?;
    Ok(WriteOut {
        path: real,
        bytes: args.content.len() as u64,
        created,
    })
}

/// `edit_file`.
pub fn edit(ws: &Workspace, guard: &Guard, args: EditArgs) -> Result<EditOut, ToolError> {
    let rel = normalise(&args.path)?;
    if args.edits.is_empty() {
        return Err(ToolError::Invalid("no edits given".into()));
    }
    let (fd, real) = open_read(ws, guard, &rel)?;
    let (bytes, size) = read_fd(fd, MAX_FILE_BYTES + 1)?;
    if size > MAX_FILE_BYTES {
        return Err(ToolError::Invalid(format!(
            "{rel} is too large to edit ({size} bytes)"
        )));
    }
    if let Some(seen) = ws.last_seen(&real)
        && seen != digest(&bytes)
    {
        return Err(ToolError::Stale(format!(
            "{real} changed since you last read it; read it again before editing"
        )));
    }
    let original = String::from_utf8(bytes)
        .map_err(|_| ToolError::Invalid(format!("{rel} is not UTF-8 text")))?;
    let mut text = original.clone();
    for (i, e) in args.edits.iter().enumerate() {
        if e.old_text.is_empty() {
            return Err(ToolError::Invalid(format!(
                "edit {}: old_text is empty",
                i + 1
            )));
        }
        let found = text.matches(e.old_text.as_str()).count();
        let expected = e.expected_count.unwrap_or(1);
        if found == 0 {
            return Err(ToolError::Invalid(format!(
                "edit {}: old_text was not found in {rel}{}",
                i + 1,
                near_miss(&text, &e.old_text)
            )));
        }
        if found != expected {
            return Err(ToolError::Invalid(format!(
                "edit {}: old_text occurs {found} times in {rel}, expected {expected}; add context to make it unique or set expected_count",
                i + 1
            )));
        }
        text = text.replace(e.old_text.as_str(), &e.new_text);
    }
    let diff = similar::TextDiff::from_lines(&original, &text)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{real}"), &format!("b/{real}"))
        .to_string();
    if !args.dry_run {
        write_atomic(ws, guard, &rel, text.as_bytes())?;
    }
    Ok(EditOut {
        path: real,
        diff,
        applied: !args.dry_run,
    })
}

/// A hint for an `old_text` that is not in the file: the line most like its first line.
fn near_miss(text: &str, old: &str) -> String {
    let Some(first) = old.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return String::new();
    };
    let best = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i, similar::TextDiff::from_chars(l.trim(), first).ratio()))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((line, ratio)) if ratio >= 0.6 => format!(
            "; the closest line is {} ({:.0}% alike): check whitespace and exact characters",
            line + 1,
            ratio * 100.0
        ),
        _ => String::new(),
    }
}

/// The walk under `rel`, from a directory opened beneath the root (the walker is handed the
/// descriptor's /proc path, so a swapped symlink cannot move the walk's start). Symlinks are
/// not followed.
fn walk(
    ws: &Workspace,
    guard: &Guard,
    rel: &str,
    depth: Option<usize>,
    all: bool,
) -> Result<(String, OwnedFd, ignore::Walk), ToolError> {
    let fd = ws
        .root
        .open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
    let real = ws.root.where_is(&fd)?;
    guard.file(&ws.name, FileOp::List, &real, None)?;
    let start = format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
    );
    let mut b = ignore::WalkBuilder::new(&start);
    b.follow_links(false)
        .max_depth(depth)
        .hidden(!all)
        .git_ignore(!all)
        .git_exclude(!all)
        .git_global(false)
        .ignore(!all)
        .parents(false)
        .require_git(false)
        .sort_by_file_name(std::cmp::Ord::cmp)
        .filter_entry(|e| e.file_name() != ".git");
    Ok((real, fd, b.build()))
}

/// A walk entry's workspace-relative path.
fn entry_path(base: &str, fd: &OwnedFd, entry: &ignore::DirEntry) -> Option<String> {
    let start = format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
    );
    let rest = entry
        .path()
        .strip_prefix(&start)
        .ok()?
        .to_string_lossy()
        .into_owned();
    if rest.is_empty() {
        return None;
    }
    Some(if base.is_empty() {
        rest
    } else {
        format!("{base}/{rest}")
    })
}

fn kind(ft: Option<std::fs::FileType>) -> &'static str {
    match ft {
        Some(t) if t.is_dir() => "dir",
        Some(t) if t.is_symlink() => "symlink",
        Some(t) if t.is_file() => "file",
        _ => "other",
    }
}

/// Most entries one listing returns.
const MAX_ENTRIES: usize = 5000;

/// One listed entry.
struct Listed {
    path: String,
    kind: &'static str,
    size: Option<u64>,
}

/// The entries under `args.path`, to `depth`.
fn entries(
    ws: &Workspace,
    guard: &Guard,
    args: &ListArgs,
    depth: usize,
) -> Result<(String, Vec<Listed>, bool), ToolError> {
    let rel = normalise(&args.path)?;
    let (base, fd, walker) = walk(ws, guard, &rel, Some(depth.clamp(1, 10)), args.all)?;
    let mut out = Vec::new();
    let mut truncated = false;
    for entry in walker.flatten() {
        let Some(path) = entry_path(&base, &fd, &entry) else {
            continue;
        };
        if out.len() >= MAX_ENTRIES {
            truncated = true;
            break;
        }
        let size = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len());
        out.push(Listed {
            path,
            kind: kind(entry.file_type()),
            size,
        });
    }
    Ok((base, out, truncated))
}

/// `list_dir`.
pub fn list(ws: &Workspace, guard: &Guard, args: ListArgs) -> Result<ListOut, ToolError> {
    let (base, listed, truncated) = entries(ws, guard, &args, args.depth.unwrap_or(1))?;
    let entries: Vec<Entry> = listed
        .iter()
        .map(|e| Entry {
            path: e.path.clone(),
            kind: e.kind.to_owned(),
            size: e.size,
        })
        .collect();
    Ok(ListOut {
        path: base,
        entries,
        truncated,
    })
}

/// `tree`: the listing drawn as an indented tree.
pub fn tree(ws: &Workspace, guard: &Guard, args: ListArgs) -> Result<TreeOut, ToolError> {
    let (base, listed, truncated) = entries(ws, guard, &args, args.depth.unwrap_or(3))?;
    let mut out = String::from(if base.is_empty() { "." } else { base.as_str() });
    out.push('\n');
    let prefix = format!("{base}/");
    for e in &listed {
        let rel = e.path.strip_prefix(&prefix).unwrap_or(&e.path);
        let level = rel.matches('/').count();
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let suffix = if e.kind == "dir" { "/" } else { "" };
        out.push_str(&format!("{}{name}{suffix}\n", "  ".repeat(level + 1)));
    }
    Ok(TreeOut {
        tree: out,
        truncated,
    })
}

/// `find`.
pub fn find(ws: &Workspace, guard: &Guard, args: FindArgs) -> Result<FindOut, ToolError> {
    let rel = normalise(&args.path)?;
    let glob = globset::GlobBuilder::new(&args.pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| ToolError::Invalid(format!("bad glob: {e}")))?
        .compile_matcher();
    let (base, fd, walker) = walk(ws, guard, &rel, None, false)?;
    let mut found = Vec::new();
    let mut truncated = false;
    for entry in walker.flatten() {
        let Some(path) = entry_path(&base, &fd, &entry) else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or(&path);
        if glob.is_match(&path) || (!args.pattern.contains('/') && glob.is_match(name)) {
            if found.len() >= MAX_ENTRIES {
                truncated = true;
                break;
            }
            found.push(path);
        }
    }
    Ok(FindOut {
        paths: found,
        truncated,
    })
}

/// Files larger than this are skipped by grep.
const GREP_MAX_FILE: u64 = 4 << 20;

/// `grep`.
pub fn grep(ws: &Workspace, guard: &Guard, args: GrepArgs) -> Result<GrepOut, ToolError> {
    let rel = normalise(&args.path)?;
    let re = regex::RegexBuilder::new(&args.pattern)
        .case_insensitive(args.ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ToolError::Invalid(format!("bad regular expression: {e}")))?;
    let glob = match &args.glob {
        Some(g) => Some(
            globset::Glob::new(g)
                .map_err(|e| ToolError::Invalid(format!("bad glob: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let limit = args.limit.unwrap_or(100).clamp(1, 1000);
    let mut matches = Vec::new();
    let mut seen = 0usize;
    let mut more = false;
    let mut scan = |path: &str, bytes: &[u8]| -> bool {
        if bytes.contains(&0) {
            return true;
        }
        let text = String::from_utf8_lossy(bytes);
        for (i, line) in text.lines().enumerate() {
            if re.is_match(line) {
                if seen >= args.offset {
                    if matches.len() >= limit {
                        more = true;
                        return false;
                    }
                    let shown: String = line.chars().take(400).collect();
                    matches.push(GrepMatch {
                        path: path.to_owned(),
                        line: i as u64 + 1,
                        text: shown,
                    });
                }
                seen += 1;
            }
        }
        true
    };
    // A single file.
    let fd = ws
        .root
        .open_at(&rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ToolError::Io(e.to_string()))?;
    if st.st_mode & libc_mode::S_IFMT == libc_mode::S_IFREG {
        let real = ws.root.where_is(&fd)?;
        guard.file(&ws.name, FileOp::Read, &real, None)?;
        let (bytes, _) = read_fd(fd, GREP_MAX_FILE)?;
        scan(&real, &bytes);
    } else {
        drop(fd);
        let (base, dirfd, walker) = walk(ws, guard, &rel, None, false)?;
        for entry in walker.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Some(path) = entry_path(&base, &dirfd, &entry) else {
                continue;
            };
            if glob.as_ref().is_some_and(|g| !g.is_match(&path)) {
                continue;
            }
            if entry.metadata().map_or(true, |m| m.len() > GREP_MAX_FILE) {
                continue;
            }
            // Each file is opened beneath the root again and decided on its own.
            let Ok(fd) = ws.root.open_at(
                &path,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW,
                0,
            ) else {
                continue;
            };
            if guard.file(&ws.name, FileOp::Read, &path, None).is_err() {
                continue;
            }
            let Ok((bytes, _)) = read_fd(fd, GREP_MAX_FILE) else {
                continue;
            };
            if !scan(&path, &bytes) {
                break;
            }
        }
    }
    let next = more.then_some((args.offset + matches.len()) as u64);
    Ok(GrepOut {
        matches,
        next_offset: next,
    })
}

/// `file_info`.
pub fn info(ws: &Workspace, guard: &Guard, args: PathArgs) -> Result<InfoOut, ToolError> {
    let rel = normalise(&args.path)?;
    let (parent, name) = if rel.is_empty() {
        (
            ws.root.open_at("", OFlags::PATH | OFlags::DIRECTORY, 0)?,
            ".".to_owned(),
        )
    } else {
        ws.root.parent(&rel)?
    };
    let real = if rel.is_empty() {
        String::new()
    } else {
        ws.root.real_child(&parent, &name)?
    };
    guard.file(
        &ws.name,
        FileOp::List,
        if real.is_empty() { "." } else { &real },
        None,
    )?;
    let st = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno(&rel, e))?;
    let kind = match st.st_mode & libc_mode::S_IFMT {
        libc_mode::S_IFREG => "file",
        libc_mode::S_IFDIR => "dir",
        libc_mode::S_IFLNK => "symlink",
        _ => "other",
    };
    let modified = time::OffsetDateTime::from_unix_timestamp(st.st_mtime)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let target = (kind == "symlink")
        .then(|| rustix::fs::readlinkat(&parent, name.as_str(), Vec::new()).ok())
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    Ok(InfoOut {
        path: real,
        kind: kind.to_owned(),
        size: st.st_size,
        mode: format!("{:o}", st.st_mode & 0o7777),
        modified,
        symlink_target: target,
    })
}

/// `make_dir`.
pub fn mkdir(ws: &Workspace, guard: &Guard, args: PathArgs) -> Result<PathOut, ToolError> {
    let rel = normalise(&args.path)?;
    if rel.is_empty() {
        return Err(ToolError::Invalid(
            "the workspace root already exists".into(),
        ));
    }
    make_dirs(ws, guard, &rel)?;
    Ok(PathOut { path: rel })
}

/// `move_path`.
pub fn rename(ws: &Workspace, guard: &Guard, args: MoveArgs) -> Result<MoveOut, ToolError> {
    let from = normalise(&args.from)?;
    let to = normalise(&args.to)?;
    let (fdir, fname) = ws.root.parent(&from)?;
    let (tdir, tname) = ws.root.parent(&to)?;
    let real_from = ws.root.real_child(&fdir, &fname)?;
    let real_to = ws.root.real_child(&tdir, &tname)?;
    guard.file(&ws.name, FileOp::Rename, &real_from, Some(&real_to))?;
    let fdir = ws.root.open_at(
        &ws.root.where_is(&fdir)?,
        OFlags::RDONLY | OFlags::DIRECTORY,
        0,
    )?;
    let tdir = ws.root.open_at(
        &ws.root.where_is(&tdir)?,
        OFlags::RDONLY | OFlags::DIRECTORY,
        0,
    )?;
    rustix::fs::renameat_with(
        &fdir,
        fname.as_str(),
        &tdir,
        tname.as_str(),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| match e {
        rustix::io::Errno::EXIST => ToolError::Invalid(format!("{to} already exists")),
        e => errno(&from, e),
    })?;
    ws.forget(&real_from);
    Ok(MoveOut {
        from: real_from,
        to: real_to,
    })
}

/// `copy_file`: regular files only.
pub fn copy(ws: &Workspace, guard: &Guard, args: MoveArgs) -> Result<MoveOut, ToolError> {
    let from = normalise(&args.from)?;
    let to = normalise(&args.to)?;
    let (fd, _) = open_read(ws, guard, &from)?;
    let (bytes, size) = read_fd(fd, MAX_FILE_BYTES + 1)?;
    if size > MAX_FILE_BYTES {
        return Err(ToolError::Invalid(format!(
            "{from} is too large to copy ({size} bytes)"
        )));
    }
    let (tdir, tname) = ws.root.parent(&to)?;
    if rustix::fs::statat(&tdir, tname.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Err(ToolError::Invalid(format!("{to} already exists")));
    }
    let (real, _) = write_atomic(ws, guard, &to, &bytes)?;
    Ok(MoveOut { from, to: real })
}

/// `delete_path`.
pub fn delete(ws: &Workspace, guard: &Guard, args: DeleteArgs) -> Result<PathOut, ToolError> {
    let rel = normalise(&args.path)?;
    if rel.is_empty() {
        return Err(ToolError::Invalid(
            "the workspace root cannot be deleted".into(),
        ));
    }
    let (parent, name) = ws.root.parent(&rel)?;
    let real = ws.root.real_child(&parent, &name)?;
    guard.file(&ws.name, FileOp::Delete, &real, None)?;
    let dir = ws.root.open_at(
        &ws.root.where_is(&parent)?,
        OFlags::RDONLY | OFlags::DIRECTORY,
        0,
    )?;
    let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno(&rel, e))?;
    if st.st_mode & libc_mode::S_IFMT == libc_mode::S_IFDIR {
        if !args.recursive {
            rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR).map_err(|e| match e {
                rustix::io::Errno::NOTEMPTY => ToolError::Invalid(format!(
                    "{rel} is a directory that is not empty; set recursive to delete it all"
                )),
                e => errno(&rel, e),
            })?;
        } else {
            remove_tree(&dir, &name, 0).map_err(|e| errno(&rel, e))?;
        }
    } else {
        rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).map_err(|e| errno(&rel, e))?;
    }
    ws.forget(&real);
    Ok(PathOut { path: real })
}

/// Removes `name` in `dir` and everything under it, by descriptors (never following a link).
fn remove_tree(dir: &OwnedFd, name: &str, depth: usize) -> Result<(), rustix::io::Errno> {
    if depth > 256 {
        return Err(rustix::io::Errno::LOOP);
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    let mut reader = rustix::fs::Dir::read_from(&sub)?;
    for entry in reader.by_ref() {
        let entry = entry?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push((n, entry.file_type() == rustix::fs::FileType::Directory));
        }
    }
    for (n, is_dir) in names {
        if is_dir {
            remove_tree(&sub, &n, depth + 1)?;
        } else {
            rustix::fs::unlinkat(&sub, n.as_str(), AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
