//! Evaluation engines behind one narrow interface, so the deny-by-default rules in
//! [`crate::Policy`] are written once for every engine.

pub(crate) mod rego;
#[cfg(feature = "opa-wasm")]
pub(crate) mod wasm;

use serde_json::Value;

/// Why an evaluation produced no value.
#[derive(Debug, Clone)]
pub(crate) enum EvalFailure {
    /// The engine's time or fuel limit was reached.
    Timeout(String),
    /// Any other engine error.
    Error(String),
}

/// A compiled policy set, ready to answer. Implementations are cheap to share across threads.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Short engine name for decision provenance: `rego` or `wasm`.
    fn kind(&self) -> &'static str;
    /// Whether the rule at `path` (`data.cordon.network.decision`) exists in this set.
    fn has_rule(&self, path: &str) -> bool;
    /// Evaluate the rule at `path`. `Ok(None)` is an undefined result.
    fn eval(&self, path: &str, input: &Value) -> Result<Option<Value>, EvalFailure>;
}
