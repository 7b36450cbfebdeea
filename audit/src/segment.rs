//! Reading log files: lines with their positions, the last complete record, rotated segments.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::error::AuditError;

/// The `.head` file beside the log: the last record written, so that removing whole records
/// from the end of the log is detectable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The seq of the last record written.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// `<log>.head`
pub fn head_path(log: &Path) -> PathBuf {
    with_suffix(log, ".head")
}

/// `<log>.lock`
pub(crate) fn lock_path(log: &Path) -> PathBuf {
    with_suffix(log, ".lock")
}

/// `<log>.<first seq, 20 digits>`: a rotated segment.
pub(crate) fn segment_path(log: &Path, first_seq: u64) -> PathBuf {
    with_suffix(log, &format!(".{first_seq:020}"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Read the head file, if there is one and it parses.
pub fn read_head(log: &Path) -> Option<Head> {
    let text = fs::read_to_string(head_path(log)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Rotated segments of `log`, oldest first.
pub fn segments(log: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = log.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => return Err(AuditError::io(&dir, "list directory", e)),
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = file.strip_prefix(&prefix)
            && rest.len() == 20
            && let Ok(seq) = rest.parse::<u64>()
        {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The last complete line of a file and whether bytes follow it without a newline (a torn
/// write). Returns `(last_line, complete_len, torn_bytes)`, where `complete_len` is the length
/// up to and including the last newline.
pub(crate) fn tail(file: &mut File, path: &Path) -> Result<(Option<String>, u64, u64), AuditError> {
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| AuditError::io(path, "seek", e))?;
    if len == 0 {
        return Ok((None, 0, 0));
    }
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| AuditError::io(path, "seek", e))?;
        let mut buf = Vec::new();
        file.by_ref()
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(|e| AuditError::io(path, "read", e))?;
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                // No newline at all: the whole file is one torn line.
                return Ok((None, 0, len));
            }
            window = window.saturating_mul(4);
            continue;
        };
        let complete_len = start + last_nl as u64 + 1;
        let torn = len - complete_len;
        let body = buf.get(..last_nl).unwrap_or_default();
        match body.iter().rposition(|&b| b == b'\n') {
            Some(prev_nl) => {
                let line = body.get(prev_nl + 1..).unwrap_or_default();
                return Ok((
                    Some(String::from_utf8_lossy(line).into_owned()),
                    complete_len,
                    torn,
                ));
            }
            None if start == 0 => {
                return Ok((
                    Some(String::from_utf8_lossy(body).into_owned()),
                    complete_len,
                    torn,
                ));
            }
            None => window = window.saturating_mul(4),
        }
        if window > 64 * 1024 * 1024 {
            return Err(AuditError::Unreadable {
                path: path.to_owned(),
                why: "last record is longer than 64 MiB".into(),
            });
        }
    }
}

/// Parse one line into its value, seq and canonical hash.
pub(crate) fn parse_line(line: &str) -> Result<(Value, u64, String), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let seq = value
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| "no numeric \"seq\"".to_owned())?;
    let hash = canonical::hash(&canonical::to_string(&value));
    Ok((value, seq, hash))
}
