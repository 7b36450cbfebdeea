//! Errors of the policy layer. Evaluation never returns one: it denies instead (see
//! [`crate::Decision`]). These are for loading, where the caller must know the set was refused.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// A policy set that could not be loaded. The previous set (if any) stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No `.rego` file and no Wasm bundle was found.
    #[error(
        "no policy found in {0} (expected .rego files, a policy.wasm or an opa bundle .tar.gz)"
    )]
    Empty(PathBuf),
    /// Rego sources and a Wasm bundle side by side: which one answers would be a guess.
    #[error("{0}: a policy source holds either .rego files or one Wasm bundle, not both")]
    Mixed(PathBuf),
    /// A Wasm bundle was given but this build has no Wasm backend.
    #[error("{0} is an OPA Wasm bundle, but cordon was built without the opa-wasm feature")]
    WasmDisabled(PathBuf),
    /// A file over [`crate::source::MAX_FILE_BYTES`].
    #[error("{0} is larger than the 16 MiB a policy or data file may be")]
    TooLarge(PathBuf),
    /// More files than [`crate::source::MAX_FILES`].
    #[error("{0} holds more than 10000 files; point cordon at the policy directory itself")]
    TooMany(PathBuf),
    /// A file name or a Rego file that is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// A data document that does not parse.
    #[error("data file {path} does not parse: {why}")]
    Data {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        why: String,
    },
    /// Two data documents set the same key differently.
    #[error("data file {path} conflicts with earlier data at key {key:?}")]
    DataConflict {
        /// The file that conflicted.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A Rego module does not parse or compile.
    #[error("policy does not compile: {0}")]
    Compile(String),
    /// The Wasm module or bundle is unusable.
    #[error("wasm policy {path}: {why}")]
    Wasm {
        /// The module or bundle.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The policy data from the config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The set's own Rego unit tests fail, so it is refused.
    #[error("policy tests fail: {failed} of {total} failed ({names})")]
    TestsFailed {
        /// How many failed.
        failed: usize,
        /// How many ran.
        total: usize,
        /// The failing tests, comma-separated (first ten).
        names: String,
    },
}

impl LoadError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
