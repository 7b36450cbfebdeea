//! The audit record of a run: argv (secrets redacted), working directory, outcome, limits hit
//! and isolation level. One record per run, written by whoever ran it.

use cordon_audit::{Event, Kind};
use serde_json::json;

use crate::config::Command;
use crate::outcome::{Exit, Outcome};

/// Longest argv kept in a record; longer ones are cut with a marker.
pub const MAX_ARGV_CHARS: usize = 2048;

/// Builds the event for a finished run. `redact` replaces secrets in the command line (the
/// scanner's job); `sandbox` names the workspace's sandbox.
pub fn event(
    sandbox: &str,
    cmd: &Command,
    outcome: &Outcome,
    redact: &dyn Fn(&str) -> String,
) -> Event {
    let argv: Vec<String> = cmd
        .argv
        .iter()
        .map(|a| redact(&a.to_string_lossy()))
        .collect();
    let mut target = argv.join(" ");
    if target.chars().count() > MAX_ARGV_CHARS {
        target = target.chars().take(MAX_ARGV_CHARS).collect::<String>() + " [truncated]";
    }
    let (outcome_text, code) = match outcome.exit {
        Exit::Code(0) => ("success".to_owned(), json!(0)),
        Exit::Code(c) => (format!("exit {c}"), json!(c)),
        Exit::Signal(s) => (format!("signal {s}"), json!(null)),
    };
    let outcome_text = if outcome.timed_out {
        "timeout".to_owned()
    } else if outcome.cancelled {
        "cancelled".to_owned()
    } else {
        outcome_text
    };
    let mut event = Event::new(Kind::Sandbox, "run")
        .sandbox(sandbox)
        .target(target)
        .outcome(outcome_text)
        .duration_ms(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX))
        .detail("argv", json!(argv))
        .detail("cwd", json!(cmd.cwd.display().to_string()))
        .detail("exit_code", code)
        .detail(
            "signal",
            match outcome.exit {
                Exit::Signal(s) => json!(s),
                Exit::Code(_) => json!(null),
            },
        )
        .detail("output_bytes", json!(outcome.output_bytes))
        .detail("truncated", json!(outcome.truncated))
        .detail("limits_hit", json!(outcome.limits_hit()))
        .detail(
            "limits",
            serde_json::to_value(&outcome.limits).unwrap_or_default(),
        )
        .detail(
            "isolation",
            serde_json::to_value(&outcome.isolation).unwrap_or_default(),
        )
        .detail("level", json!(outcome.isolation.level))
        .detail("bridge_connections", json!(outcome.bridge_connections))
        .detail("protected_denials", json!(outcome.protected_denials));
    if let Some(actor) = &cmd.actor {
        event = event.actor(actor.clone());
    }
    event
}
