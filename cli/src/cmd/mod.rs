//! One module per subcommand. Each turns arguments into library calls and an exit code.

pub mod audit;
pub mod doctor;
pub mod mcp;
pub mod policy;
pub mod proxy;
pub mod run;
pub mod scan;
pub mod up;

use std::path::PathBuf;

use anyhow::{Context, Result};
use cordon_audit::AuditLog;

use crate::config::Config;

/// What every subcommand may need from the global flags.
#[derive(Debug)]
pub struct Ctx {
    pub config_flag: Option<PathBuf>,
    pub audit_flag: Option<PathBuf>,
}

impl Ctx {
    pub fn config(&self) -> Result<Config> {
        Config::load(self.config_flag.as_deref())
    }

    /// Open the configured audit log for writing.
    pub fn audit_log(&self, config: &Config) -> Result<AuditLog> {
        let path = config.audit_path(self.audit_flag.as_deref())?;
        AuditLog::open(&path, config.audit_options()?)
            .with_context(|| format!("cannot open audit log {}", path.display()))
    }
}
