//! The checks every call passes: the `tools` policy before anything runs, the `files` and
//! `git` policies where they apply, the secret scanner on what goes back to the model (the
//! model's provider is egress too), and one audit record per call.

use std::sync::Arc;

use cordon_audit::{AuditLog, DecisionRecord, Event, Finding as AuditFinding, Kind};
use cordon_policy::input::{
    AreaInput, Channel, Context, FileOp, FilesInput, FindingInput, GitInput, SecretsInput,
    ToolsInput,
};
use cordon_policy::{Decision, Policy, SecretAction};
use cordon_secrets::{Finding, Scanner};
use serde_json::Value;

use crate::error::ToolError;

/// Policy, scanner and audit log, shared by every workspace and call.
#[derive(Debug, Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    scanner: Arc<Scanner>,
    audit: Arc<AuditLog>,
    actor: String,
}

/// What the scanner did to a result on its way to the model.
#[derive(Debug, Default)]
pub struct Screened {
    /// Findings (rule and fingerprint only reach the audit log).
    pub findings: Vec<Finding>,
    /// Whether the policy wants the secrets replaced before the model sees the result.
    pub redact: bool,
}

impl Guard {
    /// A guard deciding with `policy`, recording to `audit` on behalf of `actor`.
    pub fn new(
        policy: Arc<Policy>,
        scanner: Arc<Scanner>,
        audit: Arc<AuditLog>,
        actor: &str,
    ) -> Guard {
        Guard {
            policy,
            scanner,
            audit,
            actor: actor.to_owned(),
        }
    }

    fn context(&self, sandbox: &str) -> Context {
        Context {
            sandbox: Some(sandbox.to_owned()),
            actor: Some(self.actor.clone()),
        }
    }

    /// The scanner, for callers that scan content going somewhere else (file writes).
    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    /// `value` with every secret in its strings replaced by a marker: what policy and the
    /// audit log see of a call's arguments.
    pub fn redact_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.scanner.redacted(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The `tools` decision on a call (arguments already redacted).
    pub fn tool(&self, sandbox: &str, tool: &str, arguments: &Value) -> Decision {
        let input = AreaInput::Tools(ToolsInput {
            tool: tool.to_owned(),
            arguments: arguments.clone(),
        });
        self.policy.decide(&self.context(sandbox), &input)
    }

    /// The `files` decision on `op` at `path` (and `to`); a deny is an error with the reasons.
    pub fn file(
        &self,
        sandbox: &str,
        op: FileOp,
        path: &str,
        to: Option<&str>,
    ) -> Result<(), ToolError> {
        let mut input = FilesInput::new(op, if path.is_empty() { "." } else { path });
        input.to = to.map(str::to_owned);
        let decision = self
            .policy
            .decide(&self.context(sandbox), &AreaInput::Files(input));
        if decision.allow {
            Ok(())
        } else {
            Err(ToolError::Denied(reasons(
                &decision,
                "the files policy denies it",
            )))
        }
    }

    /// The `git` decision on a commit or push.
    pub fn git(&self, sandbox: &str, input: GitInput) -> Result<(), ToolError> {
        let decision = self
            .policy
            .decide(&self.context(sandbox), &AreaInput::Git(input));
        if decision.allow {
            Ok(())
        } else {
            Err(ToolError::Denied(reasons(
                &decision,
                "the git policy denies it",
            )))
        }
    }

    /// Scans `text` on its way to the model from `tool`; the `secrets` policy (channel
    /// `tool_output`) decides: allow passes it, redact asks the caller to replace each secret
    /// (`Screened::redact`), block refuses the whole result.
    pub fn screen(&self, sandbox: &str, tool: &str, text: &str) -> Result<Screened, ToolError> {
        let findings = self.scanner.scan(text.as_bytes());
        if findings.is_empty() {
            return Ok(Screened::default());
        }
        let input = AreaInput::Secrets(SecretsInput {
            channel: Channel::ToolOutput,
            destination: tool.to_owned(),
            findings: findings
                .iter()
                .map(|f| FindingInput {
                    rule: f.rule.clone(),
                    fingerprint: f.fingerprint.clone(),
                    location: Some(format!("line {}", f.line)),
                    entropy: Some(f.entropy),
                })
                .collect(),
        });
        let decision = self.policy.decide(&self.context(sandbox), &input);
        let action = decision.action.unwrap_or(SecretAction::Block);
        match (decision.allow, action) {
            (true, SecretAction::Allow) => Ok(Screened {
                findings,
                redact: false,
            }),
            (true, SecretAction::Redact) => Ok(Screened {
                findings,
                redact: true,
            }),
            _ => {
                let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
                Err(ToolError::Blocked(format!(
                    "the result carries a secret ({}) and the secrets policy blocks it",
                    rules.join(", ")
                )))
            }
        }
    }

    /// Writes one record; a record that cannot be written fails the call.
    pub fn record(&self, event: Event) -> Result<(), ToolError> {
        self.audit
            .append(event.actor(self.actor.clone()))
            .map(|_| ())
            .map_err(|e| ToolError::Io(format!("the audit log cannot be written: {e}")))
    }
}

/// The policy's reasons, or `fallback` when it gave none.
fn reasons(decision: &Decision, fallback: &str) -> String {
    if decision.reasons.is_empty() {
        fallback.to_owned()
    } else {
        decision.reasons.join("; ")
    }
}

/// A tool-call record's decision part.
pub fn decision_record(decision: &Decision) -> DecisionRecord {
    DecisionRecord {
        allow: decision.allow,
        reasons: decision.reasons.clone(),
        policy: decision.policy.clone(),
    }
}

/// Findings as the audit log keeps them: rule and fingerprint.
pub fn audit_findings(found: &[Finding]) -> Vec<AuditFinding> {
    found
        .iter()
        .filter_map(|f| AuditFinding::checked(&f.rule, &f.fingerprint))
        .collect()
}

/// A tool-call event.
pub fn tool_event(tool: &str) -> Event {
    Event::new(Kind::ToolCall, tool).target(tool)
}
