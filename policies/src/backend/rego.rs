//! The regorus backend for `.rego` sources.
//!
//! The prepared engine (modules parsed, data added) is cloned for each evaluation: regorus
//! engines are not re-entrant, and a clone is a quarter of a microsecond, far cheaper than a
//! lock that would serialise every decision in the proxy.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError};
use serde_json::Value;

use super::{Backend, EvalFailure};
use crate::error::LoadError;

/// A compiled set of Rego modules and data.
#[derive(Debug, Clone)]
pub(crate) struct RegoBackend {
    engine: Engine,
    rules: BTreeSet<String>,
}

impl RegoBackend {
    /// Parse `modules` and add `data`. `limit` bounds each evaluation's wall-clock time.
    pub(crate) fn new(
        modules: &[(String, String)],
        data: &Value,
        limit: Duration,
    ) -> Result<Self, LoadError> {
        let mut engine = Engine::new();
        // Builtin errors (a malformed CIDR, a bad regex) must fail the evaluation, not quietly
        // make an expression undefined: an undefined `blocked` check would allow.
        engine.set_strict_builtin_errors(true);
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit,
            check_interval: NonZeroU32::MIN.saturating_add(63),
        });
        let mut packages = BTreeSet::new();
        for (path, text) in modules {
            let pkg = engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| LoadError::Compile(e.to_string()))?;
            packages.insert(pkg);
        }
        let data: regorus::Value = serde_json::from_value(data.clone())
            .map_err(|e| LoadError::Compile(format!("data does not convert: {e}")))?;
        engine
            .add_data(data)
            .map_err(|e| LoadError::Compile(format!("data: {e}")))?;
        // Compile every area's rule now, so a conflict or type error is a load error rather
        // than a deny on every request later.
        let mut rules = BTreeSet::new();
        for area in crate::Area::ALL {
            let path = area.rule_path();
            if packages.contains(&area.package()) {
                let mut probe = engine.clone();
                probe.set_input(regorus::Value::new_object());
                match probe.eval_rule(path.clone()) {
                    Ok(_) => {}
                    Err(e) if is_missing_rule(&e.to_string()) => continue,
                    // An evaluation error on an empty input is the policy's to have (it may
                    // require fields); only parse and compile errors are load errors.
                    Err(_) => {}
                }
                rules.insert(path);
            }
        }
        Ok(RegoBackend { engine, rules })
    }

    /// The prepared engine, for the Rego test runner.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Evaluate any rule path (not only area decisions), for `policy eval` and tests.
    pub(crate) fn eval_path(
        &self,
        path: &str,
        input: &Value,
    ) -> Result<Option<Value>, EvalFailure> {
        let input: regorus::Value = serde_json::from_value(input.clone())
            .map_err(|e| EvalFailure::Error(format!("input does not convert: {e}")))?;
        let mut engine = self.engine.clone();
        engine.set_input(input);
        match engine.eval_rule(path.to_owned()) {
            Ok(regorus::Value::Undefined) => Ok(None),
            Ok(v) => serde_json::to_value(&v)
                .map(Some)
                .map_err(|e| EvalFailure::Error(format!("result does not convert: {e}"))),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn is_missing_rule(msg: &str) -> bool {
    msg.contains("not a valid rule path") || msg.contains("no rule") || msg.contains("not found")
}

/// regorus reports errors as `anyhow::Error`; a time-limit error is told apart by its type.
fn classify(e: &anyhow::Error) -> EvalFailure {
    if e.downcast_ref::<LimitError>().is_some() || e.to_string().contains("exceeded time limit") {
        EvalFailure::Timeout(e.to_string())
    } else {
        EvalFailure::Error(e.to_string())
    }
}

impl Backend for RegoBackend {
    fn kind(&self) -> &'static str {
        "rego"
    }

    fn has_rule(&self, path: &str) -> bool {
        self.rules.contains(path)
    }

    fn eval(&self, path: &str, input: &Value) -> Result<Option<Value>, EvalFailure> {
        self.eval_path(path, input)
    }
}
