//! The typed answer of a decision point, and the rules that turn a Rego value into one.
//!
//! Parsing is strict: anything that is not exactly the contract's shape is a deny with a reason
//! that says what was wrong, so a policy bug can never widen access.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::area::Area;

/// What to do with secret findings (the `secrets` area's extra).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    /// Let the content through unchanged.
    Allow,
    /// Replace each finding with a marker, then let the content through.
    Redact,
    /// Stop the content.
    Block,
}

/// Why a decision was made without a policy's own answer. Each of these is a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fallback {
    /// No policy set is loaded at all.
    NoPolicy,
    /// The loaded set has no `cordon.<area>` package.
    MissingPackage,
    /// `decision` evaluated to undefined.
    Undefined,
    /// `decision` was defined but not of the contract's shape.
    WrongShape,
    /// Evaluation failed (a builtin error, a conflict, an engine error).
    EvalError,
    /// Evaluation ran past its time limit.
    Timeout,
    /// The input could not be given to the policy.
    BadInput,
}

/// The answer of one decision point.
///
/// `allow` is the only field callers need to enforce; `reasons` goes back to the agent and into
/// the audit log; `policy` names the policy set that answered, so a record can be traced to the
/// exact files that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the operation may go ahead.
    pub allow: bool,
    /// Human-readable reasons, deny reasons above all.
    pub reasons: Vec<String>,
    /// For the `secrets` area: what to do with the findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<SecretAction>,
    /// Other keys the policy returned, kept for the caller and the audit log.
    #[serde(skip_serializing_if = "Map::is_empty", default)]
    pub extras: Map<String, Value>,
    /// The policy set that answered (`<backend>:<digest prefix>`), or `none`.
    pub policy: String,
    /// Set when the decision is a default deny rather than the policy's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

impl Decision {
    /// A deny that did not come from the policy's own answer.
    pub fn fallback(area: Area, kind: Fallback, reason: impl Into<String>, policy: &str) -> Self {
        Decision {
            allow: false,
            reasons: vec![reason.into()],
            action: (area == Area::Secrets).then_some(SecretAction::Block),
            extras: Map::new(),
            policy: policy.to_owned(),
            fallback: Some(kind),
        }
    }

    /// Turn the value of `data.cordon.<area>.decision` into a decision, denying on any deviation
    /// from the contract.
    pub fn from_value(area: Area, value: Value, policy: &str) -> Self {
        match parse(area, value) {
            Ok((allow, reasons, action, extras)) => Decision {
                allow,
                reasons,
                action,
                extras,
                policy: policy.to_owned(),
                fallback: None,
            },
            Err(why) => Decision::fallback(
                area,
                Fallback::WrongShape,
                format!("policy result for {area} has the wrong shape: {why}"),
                policy,
            ),
        }
    }
}

type Parsed = (bool, Vec<String>, Option<SecretAction>, Map<String, Value>);

fn parse(area: Area, value: Value) -> Result<Parsed, String> {
    let Value::Object(mut obj) = value else {
        return Err(format!("expected an object, got {}", kind_of(&value)));
    };
    let allow = match obj.remove("allow") {
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(format!(
                "\"allow\" must be a boolean, got {}",
                kind_of(&other)
            ));
        }
        None => return Err("\"allow\" is missing".to_owned()),
    };
    let reasons = match obj.remove("reasons") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s),
                    other => {
                        return Err(format!(
                            "\"reasons\" must hold strings, found {}",
                            kind_of(&other)
                        ));
                    }
                }
            }
            // Rego sets have no order; sort so the same decision always reads the same.
            out.sort();
            out
        }
        Some(other) => {
            return Err(format!(
                "\"reasons\" must be an array of strings, got {}",
                kind_of(&other)
            ));
        }
    };
    let action = match (area, obj.remove("action")) {
        (Area::Secrets, None) => return Err("\"action\" is missing".to_owned()),
        (Area::Secrets, Some(v)) => {
            let action: SecretAction = serde_json::from_value(v)
                .map_err(|_| "\"action\" must be one of allow, redact, block".to_owned())?;
            if allow == (action == SecretAction::Block) {
                return Err(format!(
                    "\"allow\": {allow} contradicts \"action\": {action:?}"
                ));
            }
            Some(action)
        }
        (_, Some(v)) => {
            obj.insert("action".to_owned(), v);
            None
        }
        (_, None) => None,
    };
    Ok((allow, reasons, action, obj))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(area: Area, v: Value) -> Decision {
        Decision::from_value(area, v, "test")
    }

    #[test]
    fn accepts_the_contract_shape() {
        let got = d(Area::Network, json!({"allow": true, "reasons": []}));
        assert!(got.allow);
        assert_eq!(got.fallback, None);
    }

    #[test]
    fn wrong_shapes_deny_with_a_reason() {
        for v in [
            json!(true),
            json!({"reasons": []}),
            json!({"allow": "yes"}),
            json!({"allow": true, "reasons": "x"}),
            json!({"allow": true, "reasons": [1]}),
        ] {
            let got = d(Area::Network, v.clone());
            assert!(!got.allow, "{v} must deny");
            assert_eq!(got.fallback, Some(Fallback::WrongShape), "{v}");
            assert!(got.reasons[0].contains("wrong shape"), "{:?}", got.reasons);
        }
    }

    #[test]
    fn secrets_need_a_consistent_action() {
        let ok = d(Area::Secrets, json!({"allow": true, "action": "redact"}));
        assert_eq!(ok.action, Some(SecretAction::Redact));
        assert!(ok.allow);
        for v in [
            json!({"allow": true}),
            json!({"allow": true, "action": "block"}),
            json!({"allow": false, "action": "redact"}),
            json!({"allow": true, "action": "shred"}),
        ] {
            let got = d(Area::Secrets, v.clone());
            assert!(!got.allow, "{v}");
            assert_eq!(got.action, Some(SecretAction::Block), "{v}");
        }
    }

    #[test]
    fn reasons_are_sorted_and_extras_kept() {
        let got = d(
            Area::Tools,
            json!({"allow": false, "reasons": ["b", "a"], "rule": "deny-list"}),
        );
        assert_eq!(got.reasons, ["a", "b"]);
        assert_eq!(got.extras.get("rule"), Some(&json!("deny-list")));
    }
}
