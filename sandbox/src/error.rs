//! Errors a caller can act on: each names the isolation feature or input that failed, never a
//! value from the command's environment or output.

use std::io;
use std::path::PathBuf;

/// Why a sandbox could not be prepared or a command could not be started.
///
/// A command that starts and then fails is not an error: it is an [`crate::Outcome`] with its
/// exit status. These are the cases where nothing ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The host lacks an isolation feature the configuration requires.
    #[error(
        "this host cannot provide {feature}: {reason}. Refusing to run without it; \
         `cordon doctor` lists what the host offers, and an operator may accept the weaker \
         level explicitly ({hint})"
    )]
    Unsupported {
        /// The feature, as `cordon doctor` names it.
        feature: &'static str,
        /// What the kernel said or lacked.
        reason: String,
        /// The flag or setting that accepts running without it.
        hint: &'static str,
    },
    /// The workspace is not a usable directory.
    #[error("workspace {path}: {reason}")]
    Workspace {
        /// The workspace as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration or command is invalid.
    #[error("invalid sandbox request: {0}")]
    Invalid(String),
    /// The sandbox's setup failed in the child before the command ran.
    #[error("sandbox setup failed while {stage}")]
    Setup {
        /// The setup step, e.g. "mounting /usr read-only".
        stage: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The command could not be executed inside the sandbox (not found, not executable).
    #[error("cannot execute {program} in the sandbox")]
    Exec {
        /// The program as given (argv[0]).
        program: String,
        /// The kernel's answer for the last candidate tried.
        #[source]
        source: io::Error,
    },
    /// A host-side operation failed (pipes, clone, cgroup files, the stage directory).
    #[error("{what}")]
    Host {
        /// What cordon was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl SandboxError {
    pub(crate) fn host(what: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Host {
            what: what.into(),
            source,
        }
    }
}
