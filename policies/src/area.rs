//! The decision points cordon asks the policy layer about.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One decision point. Each area is answered by `data.cordon.<area>.decision`.
///
/// The set is closed on purpose: a new decision point is a contract change that the default
/// policies, the docs and the audit mapping must all follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// Egress: CONNECT, each HTTP request, each DNS name.
    Network,
    /// Findings of the secret scanner in egress, tool output, file writes and pushes.
    Secrets,
    /// File tool operations and writes inside the workspace.
    Files,
    /// Every MCP tool call.
    Tools,
    /// Commits and pushes.
    Git,
}

impl Area {
    /// Every area, in a stable order (used by listings and tests).
    pub const ALL: [Area; 5] = [
        Area::Network,
        Area::Secrets,
        Area::Files,
        Area::Tools,
        Area::Git,
    ];

    /// The area's name as it appears in the Rego package (`cordon.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Network => "network",
            Area::Secrets => "secrets",
            Area::Files => "files",
            Area::Tools => "tools",
            Area::Git => "git",
        }
    }

    /// The Rego rule path evaluated for this area.
    pub fn rule_path(self) -> String {
        format!("data.cordon.{}.decision", self.as_str())
    }

    /// The package that must exist for this area to be answerable.
    pub fn package(self) -> String {
        format!("data.cordon.{}", self.as_str())
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not one of the five areas.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown policy area {0:?} (expected one of network, secrets, files, tools, git)")]
pub struct UnknownArea(pub String);

impl FromStr for Area {
    type Err = UnknownArea;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Area::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownArea(s.to_owned()))
    }
}
