//! Errors of the audit log.

use std::path::PathBuf;
use std::sync::Arc;

/// The audit log could not do what was asked. An operation whose record cannot be written must
/// not be acknowledged: callers treat this as a failure of the operation itself.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A read, write, fsync, lock or rename failed.
    #[error("audit log {path}: {op} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The existing log ends in a record this version cannot continue from.
    #[error("audit log {path}: cannot continue the chain: {why}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A record could not be serialised (a bug, not an input problem).
    #[error("audit record does not serialise: {0}")]
    Serialize(String),
    /// The writer thread is gone (the log was closed, or the thread panicked).
    #[error("audit writer is closed")]
    Closed,
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path, op: &'static str, e: std::io::Error) -> Self {
        AuditError::Io {
            path: path.to_owned(),
            op,
            source: Arc::new(e),
        }
    }
}
