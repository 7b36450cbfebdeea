//! Paths as a whole: information, moving, copying, deleting.

use std::os::fd::OwnedFd;

use cordon_policy::input::FileOp;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::write::write_atomic;
use super::{DeleteArgs, MAX_FILE_BYTES, MoveArgs, PathArgs, libc_mode, open_read, read_fd};
use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{InfoOut, MoveOut, PathOut};
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
