//! Changing files: atomic writes, exact-replacement edits, new directories.

use std::io::Write;

use cordon_policy::input::FileOp;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::{EditArgs, MAX_FILE_BYTES, PathArgs, WriteArgs, libc_mode, open_read, read_fd};
use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{EditOut, PathOut, WriteOut};
use crate::paths::{errno, normalise};
use crate::workspace::{Workspace, digest};

/// Creates missing directories down to `rel` (each level beneath the root, each decided).
pub(super) fn make_dirs(ws: &Workspace, guard: &Guard, rel: &str) -> Result<(), ToolError> {
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
pub(super) fn write_atomic(
    ws: &Workspace,
    guard: &Guard,
    rel: &str,
    content: &[u8],
) -> Result<(String, bool), ToolError> {
    let (parent, name) = ws.root.parent(rel)?;
    let real = ws.root.real_child(&parent, &name)?;
    guard.file(&ws.name, FileOp::Write, &real, None)?;
    let dir = ws.root.reopen_dir(&parent)?;
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
