//! Walking the workspace: listings, trees, finding by glob, searching contents.

use std::os::fd::{AsFd, OwnedFd};

use cordon_policy::input::FileOp;
use rustix::fs::OFlags;

use super::{FindArgs, GrepArgs, ListArgs, libc_mode, read_fd};
use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{Entry, FindOut, GrepMatch, GrepOut, ListOut, TreeOut};
use crate::paths::normalise;
use crate::workspace::Workspace;

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
