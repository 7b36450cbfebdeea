//! Why a tool call did not do what was asked. Every variant becomes a tool error result the
//! model can read and act on, never a protocol error, and none carries file content or a
//! secret.

/// A tool call's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Arguments that make no sense.
    #[error("{0}")]
    Invalid(String),
    /// A path that leaves the workspace.
    #[error("{0}")]
    Outside(String),
    /// Nothing at the path, or no such process, ref or workspace.
    #[error("{0}")]
    NotFound(String),
    /// Policy said no; the reasons are the policy's own.
    #[error("denied by policy: {0}")]
    Denied(String),
    /// The file changed since the agent last read it.
    #[error("{0}")]
    Stale(String),
    /// The result held a secret the secrets policy blocks.
    #[error("{0}")]
    Blocked(String),
    /// The host or the sandbox failed.
    #[error("{0}")]
    Io(String),
}

impl ToolError {
    /// A short name for the audit record's outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            ToolError::Denied(_) => "denied",
            ToolError::Blocked(_) => "blocked",
            ToolError::Outside(_) => "refused",
            _ => "error",
        }
    }
}

impl From<cordon_sandbox::SandboxError> for ToolError {
    fn from(e: cordon_sandbox::SandboxError) -> Self {
        ToolError::Io(format!("the sandbox could not run the command: {e}"))
    }
}
