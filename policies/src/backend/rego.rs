//! The regorus backend for `.rego` sources.
//!
//! A regorus engine is not re-entrant, and a clone of a *prepared* engine (modules analysed,
//! rules gathered, loops hoisted) deep-copies those tables: ~100 us for the default set, five
//! times the decision itself. So prepared engines are pooled and reused one evaluation at a
//! time (regorus resets an engine's evaluation state on every call); the pool grows to the
//! number of threads deciding at once. An engine whose evaluation failed is dropped, not reused.
//!
//! Test modules (`*_test.rego`) are left out of the decision engine: they are never decided
//! on, and every module makes each evaluation's bookkeeping larger.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError};
use serde_json::Value;

use super::{Backend, EvalFailure};
use crate::error::LoadError;

/// Idle engines kept beyond this are dropped (more threads than this rarely decide at once).
const MAX_IDLE: usize = 64;

/// A compiled set of Rego modules and data.
#[derive(Debug, Clone)]
pub(crate) struct RegoBackend {
    /// Every module, tests included: the template for the test runner.
    engine: Engine,
    /// Decision modules only, prepared: the template for the pool.
    decider: Engine,
    idle: Arc<Mutex<Vec<Engine>>>,
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
        let data: regorus::Value = serde_json::from_value(data.clone())
            .map_err(|e| LoadError::Compile(format!("data does not convert: {e}")))?;
        engine
            .add_data(data)
            .map_err(|e| LoadError::Compile(format!("data: {e}")))?;
        let mut decider = engine.clone();
        let mut packages = BTreeSet::new();
        for (path, text) in modules {
            let pkg = engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| LoadError::Compile(one_line(&e)))?;
            if !is_test_module(path) {
                decider
                    .add_policy(path.clone(), text.clone())
                    .map_err(|e| LoadError::Compile(one_line(&e)))?;
                packages.insert(pkg);
            }
        }
        // Prepare once (module analysis, scheduling, loop hoisting). regorus does this lazily on
        // the first evaluation and remembers it, but only in that engine.
        let _ = engine.eval_query("true".to_owned(), false);
        let _ = decider.eval_query("true".to_owned(), false);
        // Evaluate every area's rule now, so a conflict or type error is a load error rather
        // than a deny on every request later.
        let mut rules = BTreeSet::new();
        for area in crate::Area::ALL {
            let path = area.rule_path();
            if packages.contains(&area.package()) {
                let mut probe = decider.clone();
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
        Ok(RegoBackend {
            engine,
            decider,
            idle: Arc::new(Mutex::new(Vec::new())),
            rules,
        })
    }

    /// The prepared engine, for the Rego test runner.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Evaluate any rule path, tests' packages included, on a fresh clone of the full engine
    /// (for `policy eval --rule` and tests: not a hot path).
    pub(crate) fn eval_path(
        &self,
        path: &str,
        input: &Value,
    ) -> Result<Option<Value>, EvalFailure> {
        let mut engine = self.engine.clone();
        run(&mut engine, path, input)
    }

    /// Evaluate an area decision on a pooled engine.
    fn decide(&self, path: &str, input: &Value) -> Result<Option<Value>, EvalFailure> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut engine = pooled.unwrap_or_else(|| self.decider.clone());
        let out = run(&mut engine, path, input);
        if out.is_ok()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(engine);
        }
        out
    }
}

fn run(engine: &mut Engine, path: &str, input: &Value) -> Result<Option<Value>, EvalFailure> {
    let input: regorus::Value = serde_json::from_value(input.clone())
        .map_err(|e| EvalFailure::Error(format!("input does not convert: {e}")))?;
    engine.set_input(input);
    match engine.eval_rule(path.to_owned()) {
        Ok(regorus::Value::Undefined) => Ok(None),
        Ok(v) => serde_json::to_value(&v)
            .map(Some)
            .map_err(|e| EvalFailure::Error(format!("result does not convert: {e}"))),
        Err(e) => Err(classify(&e)),
    }
}

/// OPA's convention: tests live in `*_test.rego`.
fn is_test_module(path: &str) -> bool {
    path.ends_with("_test.rego")
}

/// regorus renders errors as a source snippet over several lines (`--> file:line:col`, the
/// source line, a caret, `error: message`). Decisions, log lines and audit records want one
/// line: `file:line:col: message`.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let text = e.to_string();
    let location = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-->"))
        .map(str::trim);
    let message = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error:"))
        .map(str::trim);
    match (location, message) {
        (Some(loc), Some(msg)) => format!("{loc}: {msg}"),
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn is_missing_rule(msg: &str) -> bool {
    msg.contains("not a valid rule path") || msg.contains("no rule") || msg.contains("not found")
}

/// regorus reports errors as `anyhow::Error`; a time-limit error is told apart by its type.
fn classify(e: &anyhow::Error) -> EvalFailure {
    if e.downcast_ref::<LimitError>().is_some() || e.to_string().contains("exceeded time limit") {
        EvalFailure::Timeout(one_line(e))
    } else {
        EvalFailure::Error(one_line(e))
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
        if self.rules.contains(path) {
            self.decide(path, input)
        } else {
            self.eval_path(path, input)
        }
    }
}
