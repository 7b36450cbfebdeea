//! Rego unit tests, as `opa test` runs them: every rule whose name starts with `test_` must
//! evaluate to `true`.
//!
//! Tests run on regorus's interpreter, which supports `with` (how Rego tests mock input and
//! data). A policy set whose own tests fail is refused on load and on reload.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use serde::Serialize;

use crate::backend::rego::RegoBackend;

/// Wall-clock limit of one test rule.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// The rule evaluated to `true`.
    Pass,
    /// The rule was undefined or not `true` (the value is given).
    Fail(String),
    /// The rule could not be evaluated.
    Error(String),
}

/// One test rule and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TestCase {
    /// The file the rule is in, relative to the policy root.
    pub file: String,
    /// The package, as `data.cordon.network`.
    pub package: String,
    /// The rule name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    #[serde(serialize_with = "as_micros")]
    pub duration: Duration,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_micros())
}

/// Every test of a policy set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestReport {
    /// The tests, in file then source order.
    pub cases: Vec<TestCase>,
}

impl TestReport {
    /// How many passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count()
    }

    /// How many failed or errored.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// The names of the failing tests, as `package.name`.
    pub fn failing(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| format!("{}.{}", c.package, c.name))
            .collect()
    }
}

/// The package a module declares (`package a.b` -> `data.a.b`).
fn package_of(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| format!("data.{}", p.trim()))
}

/// Test rule names in source order: a `test_` identifier that starts a line (as `opa fmt`
/// writes rules), each name once.
fn test_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

pub(crate) fn run(backend: &RegoBackend, modules: &[(String, String)]) -> TestReport {
    let mut report = TestReport::default();
    for (file, text) in modules {
        let Some(package) = package_of(text) else {
            continue;
        };
        for name in test_names(text) {
            let start = Instant::now();
            let mut engine = backend.engine().clone();
            // Tests are not on a request path; give them room (debug builds are slow), but
            // keep a bound so a looping test cannot hang a reload.
            engine.set_execution_timer_config(ExecutionTimerConfig {
                limit: TEST_TIME_LIMIT,
                check_interval: NonZeroU32::MIN.saturating_add(63),
            });
            let outcome = match engine.eval_rule(format!("{package}.{name}")) {
                Ok(regorus::Value::Bool(true)) => Outcome::Pass,
                Ok(regorus::Value::Undefined) => Outcome::Fail("undefined".into()),
                Ok(v) => Outcome::Fail(format!("evaluated to {v}")),
                Err(e) => Outcome::Error(crate::backend::rego::one_line(&e)),
            };
            report.cases.push(TestCase {
                file: file.clone(),
                package: package.clone(),
                name,
                outcome,
                duration: start.elapsed(),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_test_rules_once_each() {
        let text = "package a.b\n\ntest_one if true\ntest_one if false\n  test_indented if true\ntest_two := true\nnot_test if true\n";
        assert_eq!(package_of(text).as_deref(), Some("data.a.b"));
        assert_eq!(test_names(text), ["test_one", "test_two"]);
    }
}
