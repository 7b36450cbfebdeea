//! Reading records for `cordon audit tail` and `query`: every line of the rotated segments and
//! the active file, in order, parsed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::AuditError;
use crate::segment;

/// Every complete record of the log at `path` (rotated segments first when `with_segments`),
/// as JSON values. Lines that do not parse are skipped: `verify` is the tool that reports them.
pub fn records(path: &Path, with_segments: bool) -> Result<Vec<Value>, AuditError> {
    let mut files: Vec<PathBuf> = if with_segments {
        segment::segments(path)?
    } else {
        Vec::new()
    };
    files.push(path.to_owned());
    let mut out = Vec::new();
    for file in files {
        let f = File::open(&file).map_err(|e| AuditError::io(&file, "open", e))?;
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| AuditError::io(&file, "read", e))?;
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                out.push(v);
            }
        }
    }
    Ok(out)
}
