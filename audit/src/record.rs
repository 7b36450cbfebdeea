//! The audit record: what every operation in cordon leaves behind.
//!
//! Callers build an [`Event`]; the writer stamps it with the fields that make the log a chain
//! (`v`, `seq`, `ts`, `session`, `prev`) and it becomes a [`Record`]. Field names follow the
//! design's contract and map onto OCSF classes (see `audit/README.md`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The record schema version. Bumped on any incompatible change; readers check it.
pub const SCHEMA_VERSION: u32 = 1;

/// `prev` of the first record of a log: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What kind of operation a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// An MCP tool call (OCSF API Activity, 6003).
    ToolCall,
    /// A request or connection through the egress proxy (OCSF HTTP Activity, 4002).
    Egress,
    /// A policy decision asked on its own, e.g. by `cordon policy eval` (OCSF API Activity).
    Decision,
    /// A policy set loaded, reloaded or refused (OCSF API Activity).
    PolicyReload,
    /// A sandboxed process run (OCSF Process Activity, 1007).
    Sandbox,
    /// A file operation (OCSF File System Activity, 1001).
    File,
    /// The audit log's own maintenance: a recovered torn tail, a rotation.
    Audit,
}

impl Kind {
    /// The name used in records and in `cordon audit query --kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ToolCall => "tool_call",
            Kind::Egress => "egress",
            Kind::Decision => "decision",
            Kind::PolicyReload => "policy_reload",
            Kind::Sandbox => "sandbox",
            Kind::File => "file",
            Kind::Audit => "audit",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
            format!(
                "unknown record kind {s:?} (expected tool_call, egress, decision, policy_reload, sandbox, file, audit)"
            )
        })
    }
}

/// The policy decision behind an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Whether it was allowed.
    pub allow: bool,
    /// The policy's reasons.
    pub reasons: Vec<String>,
    /// The policy set that decided (`rego:<digest>`).
    pub policy: String,
}

/// A rule id from the secret scanner: lower-case letters, digits, `-`, `_`, `.`; 1 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleId(String);

/// A short keyed fingerprint of a secret: 8 to 32 lower-case hex digits.
///
/// The narrow alphabet is the point: a secret value cannot be stored in this field by mistake,
/// because almost no real credential is short lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint(String);

/// A value that cannot be a [`RuleId`] or [`Fingerprint`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid {what}: {why}")]
pub struct FindingError {
    what: &'static str,
    why: &'static str,
}

impl RuleId {
    /// Validate a rule id.
    pub fn new(id: &str) -> Result<Self, FindingError> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        if id.is_empty() || id.len() > 64 || !id.chars().all(ok_char) {
            return Err(FindingError {
                what: "rule id",
                why: "1 to 64 of a-z, 0-9, '-', '_', '.'",
            });
        }
        Ok(RuleId(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Fingerprint {
    /// Validate a fingerprint.
    pub fn new(fp: &str) -> Result<Self, FindingError> {
        if !(8..=32).contains(&fp.len())
            || !fp
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(FindingError {
                what: "fingerprint",
                why: "8 to 32 lower-case hex digits",
            });
        }
        Ok(Fingerprint(fp.to_owned()))
    }

    /// The fingerprint.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RuleId::new(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fingerprint::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret finding as the audit log keeps it: which rule, which secret (by fingerprint), never
/// the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that matched.
    pub rule: RuleId,
    /// The secret's fingerprint.
    pub fingerprint: Fingerprint,
}

impl Finding {
    /// A finding from a scanner's rule id and fingerprint; `None` when either is not of the
    /// shape the log accepts (a value that could be a secret is dropped, not stored).
    pub fn checked(rule: &str, fingerprint: &str) -> Option<Finding> {
        Some(Finding {
            rule: RuleId::new(rule).ok()?,
            fingerprint: Fingerprint::new(fingerprint).ok()?,
        })
    }
}

/// An operation to record, before the writer stamps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What kind of operation.
    pub kind: Kind,
    /// The sandbox (workspace) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Who asked (agent, user, component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The verb: `read_file`, `CONNECT`, `exec`, `reload`, ...
    pub action: String,
    /// What it acted on: a path, `host:port`, a URL without query, a policy id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The policy decision, when one was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// How it ended: `ok`, `denied`, `error: ...`, `exit 1`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Secret findings, by rule and fingerprint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Area-specific details (bytes sent, isolation level, exit signal). Callers must not put
    /// content here, only metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, Value>,
}

impl Event {
    /// An event of `kind` doing `action`; fill the rest with the builder methods.
    pub fn new(kind: Kind, action: impl Into<String>) -> Self {
        Event {
            kind,
            sandbox: None,
            actor: None,
            action: action.into(),
            target: None,
            decision: None,
            outcome: None,
            duration_ms: None,
            findings: Vec::new(),
            detail: BTreeMap::new(),
        }
    }

    /// Set the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Set the sandbox.
    pub fn sandbox(mut self, sandbox: impl Into<String>) -> Self {
        self.sandbox = Some(sandbox.into());
        self
    }

    /// Set the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Set the decision.
    pub fn decision(mut self, decision: DecisionRecord) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Set the outcome.
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Set the duration.
    pub fn duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = Some(ms);
        self
    }

    /// Add a detail.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.detail.insert(key.into(), value.into());
        self
    }

    /// Add findings.
    pub fn findings(mut self, findings: Vec<Finding>) -> Self {
        self.findings = findings;
        self
    }
}

/// A stamped record, as it stands on one line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Position in the log, from 0, continuous across sessions and rotated files.
    pub seq: u64,
    /// When it was written, RFC 3339 UTC with nanoseconds.
    pub ts: String,
    /// The writing process's session id.
    pub session: String,
    /// SHA-256 of the previous record's canonical JSON ([`GENESIS`] for the first).
    pub prev: String,
    /// The operation.
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// The record as a JSON value.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_refuse_secret_shaped_values() {
        assert!(Fingerprint::new("9f86d081884c7d65").is_ok());
        for bad in [
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "AKIAIOSFODNN7EXAMPLE",
            "short",
            "ABCDEF0123456789",
        ] {
            assert!(Fingerprint::new(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<Finding>(
            r#"{"rule":"aws","fingerprint":"AKIAIOSFODNN7EXAMPLE"}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn rule_ids_are_narrow() {
        assert!(RuleId::new("github-pat").is_ok());
        assert!(RuleId::new("Has Space").is_err());
        assert!(RuleId::new("").is_err());
    }

    #[test]
    fn kind_parses_from_its_name() {
        assert_eq!("tool_call".parse::<Kind>().unwrap(), Kind::ToolCall);
        assert!("nope".parse::<Kind>().is_err());
    }
}
