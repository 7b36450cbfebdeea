//! Paths as a whole: information, moving, copying, deleting.

use std::os::fd::OwnedFd;

use cordon_policy::input::FileOp;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::write::{make_dirs, write_atomic};
use super::{
    CopyArgs, DeleteArgs, MAX_FILE_BYTES, MoveArgs, PathArgs, libc_mode, open_read, read_fd,
};
use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{CopyOut, InfoOut, MoveOut, PathOut};
use crate::paths::{errno, normalise};
use crate::workspace::Workspace;

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

/// `move_path`.
pub fn rename(ws: &Workspace, guard: &Guard, args: MoveArgs) -> Result<MoveOut, ToolError> {
    let from = normalise(&args.from)?;
    let to = normalise(&args.to)?;
    let (fdir, fname) = ws.root.parent(&from)?;
    let (tdir, tname) = ws.root.parent(&to)?;
    let real_from = ws.root.real_child(&fdir, &fname)?;
    let real_to = ws.root.real_child(&tdir, &tname)?;
    guard.file(&ws.name, FileOp::Rename, &real_from, Some(&real_to))?;
    let fdir = ws.root.reopen_dir(&fdir)?;
    let tdir = ws.root.reopen_dir(&tdir)?;
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

/// `copy_file`: a regular file, or with `recursive` a directory and everything in it.
pub fn copy(ws: &Workspace, guard: &Guard, args: CopyArgs) -> Result<CopyOut, ToolError> {
    let from = normalise(&args.from)?;
    let to = normalise(&args.to)?;
    let (tdir, tname) = ws.root.parent(&to)?;
    if rustix::fs::statat(&tdir, tname.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Err(ToolError::Invalid(format!("{to} already exists")));
    }
    let (fdir, fname) = ws.root.parent(&from)?;
    let st = rustix::fs::statat(&fdir, fname.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno(&from, e))?;
    let mut done = Copied::default();
    if st.st_mode & libc_mode::S_IFMT != libc_mode::S_IFDIR {
        let real = copy_one(ws, guard, &from, &to, &mut done)?;
        return Ok(done.out(from, real));
    }
    if !args.recursive {
        return Err(ToolError::Invalid(format!(
            "{from} is a directory; set recursive to copy it and everything in it"
        )));
    }
    let real_from = ws.root.real_child(&fdir, &fname)?;
    let real_to = ws.root.real_child(&tdir, &tname)?;
    if real_to.starts_with(&format!("{real_from}/")) {
        return Err(ToolError::Invalid(format!(
            "{to} is inside {from}: a directory cannot be copied into itself"
        )));
    }
    guard.file(&ws.name, FileOp::List, &real_from, None)?;
    copy_tree(ws, guard, &from, &to, &mut done, 0).map_err(|e| match done.files {
        0 => e,
        n => ToolError::Invalid(format!(
            "stopped after copying {n} files into {to} (delete_path it to start again): {e}"
        )),
    })?;
    Ok(done.out(real_from, real_to))
}

/// At most this many files in one recursive copy.
const MAX_COPY_FILES: u64 = 10_000;
/// At most this many bytes in one recursive copy.
const MAX_COPY_BYTES: u64 = 256 << 20;
/// At most this deep.
const MAX_COPY_DEPTH: usize = 64;

/// What a copy has done so far.
#[derive(Default)]
struct Copied {
    files: u64,
    bytes: u64,
    skipped: Vec<String>,
}

impl Copied {
    fn out(self, from: String, to: String) -> CopyOut {
        CopyOut {
            from,
            to,
            files: self.files,
            bytes: self.bytes,
            skipped: self.skipped,
        }
    }
}

/// Copies one regular file: read as the agent would read it, written as it would write it
/// (each side decided by the files policy on its real path).
fn copy_one(
    ws: &Workspace,
    guard: &Guard,
    from: &str,
    to: &str,
    done: &mut Copied,
) -> Result<String, ToolError> {
    if done.files >= MAX_COPY_FILES {
        return Err(ToolError::Invalid(format!(
            "more than {MAX_COPY_FILES} files to copy"
        )));
    }
    let (fd, _) = open_read(ws, guard, from)?;
    let room = MAX_FILE_BYTES.min(MAX_COPY_BYTES.saturating_sub(done.bytes));
    let (bytes, size) = read_fd(fd, room + 1)?;
    if size > room {
        return Err(ToolError::Invalid(format!(
            "{from} is too large to copy ({size} bytes; {room} left)"
        )));
    }
    let (real, _) = write_atomic(ws, guard, to, &bytes)?;
    done.files += 1;
    done.bytes += size;
    Ok(real)
}

/// Copies the directory `from` to `to` (which does not exist yet): directories made, regular
/// files copied, anything else (links, sockets, devices) skipped and named in the result. The
/// source is listed through a descriptor opened beneath the workspace; each entry is then
/// opened beneath it again, so a link swapped in meanwhile is refused rather than followed.
fn copy_tree(
    ws: &Workspace,
    guard: &Guard,
    from: &str,
    to: &str,
    done: &mut Copied,
    depth: usize,
) -> Result<(), ToolError> {
    if depth > MAX_COPY_DEPTH {
        return Err(ToolError::Invalid(format!(
            "{from} is nested more than {MAX_COPY_DEPTH} directories deep"
        )));
    }
    make_dirs(ws, guard, to)?;
    let dir = ws
        .root
        .open_at(from, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
    let mut entries = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir).map_err(|e| errno(from, e))? {
        let entry = entry.map_err(|e| errno(from, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            entries.push(name);
        }
    }
    entries.sort();
    for name in entries {
        let (src, dst) = (format!("{from}/{name}"), format!("{to}/{name}"));
        let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(&src, e))?;
        match st.st_mode & libc_mode::S_IFMT {
            libc_mode::S_IFDIR => copy_tree(ws, guard, &src, &dst, done, depth + 1)?,
            libc_mode::S_IFREG => {
                copy_one(ws, guard, &src, &dst, done)?;
            }
            _ => {
                if done.skipped.len() < 100 {
                    done.skipped.push(src);
                }
            }
        }
    }
    Ok(())
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
    let dir = ws.root.reopen_dir(&parent)?;
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
