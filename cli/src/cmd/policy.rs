//! `cordon policy test` and `cordon policy eval`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use cordon_audit::{DecisionRecord, Event, Kind};
use cordon_policy::reload::reload_now;
use cordon_policy::testing::{Outcome, TestReport};
use cordon_policy::{Area, AreaInput, LoadOptions, Policy, PolicyLocation, ReloadEvent, Reloader};
use serde_json::Value;

use super::Ctx;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Run the Rego unit tests (rules named test_*) of a policy directory, like `opa test`.
    Test(TestArgs),
    /// Decide one input, print the decision as JSON; exit 0 on allow, 1 on deny.
    Eval(EvalArgs),
    /// Load a policy directory and reload it on every change, printing and auditing each
    /// attempt; a set that fails to compile or fails its tests is refused and the last good
    /// set stays. Runs until interrupted.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Policy directory (default: [policy] dir).
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy directory (default: [policy] dir, then the built-in policies).
    dir: Option<PathBuf>,
    /// Print every test, not only failures.
    #[arg(long)]
    all: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The decision point: network, secrets, files, tools or git.
    #[arg(long, required_unless_present = "rule")]
    area: Option<Area>,
    /// Evaluate this rule (`data.pkg.rule`, or a Wasm entrypoint such as `eval`) instead of an
    /// area's decision; prints its value, undefined exits 1.
    #[arg(long, conflicts_with = "area")]
    rule: Option<String>,
    /// The input as a JSON file, or - for stdin.
    #[arg(long, value_name = "FILE|-")]
    input: String,
    /// Policy directory, .wasm or bundle (default: [policy] dir, then the built-in policies).
    #[arg(long, value_name = "PATH")]
    policies: Option<PathBuf>,
}

impl PolicyCmd {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            PolicyCmd::Test(a) => test(ctx, a),
            PolicyCmd::Eval(a) => eval(ctx, a),
            PolicyCmd::Watch(a) => watch(ctx, a),
        }
    }
}

fn test(ctx: &Ctx, args: TestArgs) -> Result<ExitCode> {
    let config = ctx.config()?;
    let location = config.policy_location(args.dir.as_deref());
    let opts = LoadOptions {
        require_tests_pass: false,
        ..config.load_options()
    };
    let set = location
        .load(&config.policy_config(), &opts)
        .with_context(|| format!("cannot load policies from {location}"))?;
    let report = set.tests();
    match args.format {
        Format::Json => output::line(&serde_json::to_string_pretty(report)?),
        Format::Text => print_report(report, args.all),
    }
    if report.cases.is_empty() {
        output::warn(&format!("no test_* rules found in {location}"));
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(report: &TestReport, all: bool) {
    let mut file = "";
    for case in &report.cases {
        let (label, detail) = match &case.outcome {
            Outcome::Pass if !all => continue,
            Outcome::Pass => ("PASS", String::new()),
            Outcome::Fail(v) => ("FAIL", format!(" ({v})")),
            Outcome::Error(e) => ("ERROR", format!(": {e}")),
        };
        if case.file != file {
            file = &case.file;
            output::line(&format!("{file}:"));
        }
        output::line(&format!(
            "{}.{}: {label} ({:?}){detail}",
            case.package, case.name, case.duration
        ));
    }
    output::line(&"-".repeat(80));
    let total = report.cases.len();
    if report.failed() == 0 {
        output::line(&format!("PASS: {}/{total}", report.passed()));
    } else {
        output::line(&format!("PASS: {}/{total}", report.passed()));
        output::line(&format!("FAIL: {}/{total}", report.failed()));
    }
}

fn read_input(spec: &str) -> Result<Value> {
    let text = if spec == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(16 * 1024 * 1024)
            .read_to_string(&mut s)
            .context("cannot read input from stdin")?;
        s
    } else {
        std::fs::read_to_string(spec).with_context(|| format!("cannot read input {spec}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("input {spec} is not valid JSON"))
}

fn eval(ctx: &Ctx, args: EvalArgs) -> Result<ExitCode> {
    let config = ctx.config()?;
    let location: PolicyLocation = config.policy_location(args.policies.as_deref());
    let raw = read_input(&args.input)?;
    let set = location
        .load(&config.policy_config(), &config.load_options())
        .with_context(|| format!("cannot load policies from {location}"))?;

    if let Some(rule) = args.rule {
        return match set.eval_rule(&rule, &raw)? {
            Some(v) => {
                output::line(&serde_json::to_string_pretty(&v)?);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                output::line("undefined");
                Ok(ExitCode::from(1))
            }
        };
    }
    let Some(area) = args.area else {
        bail!("--area or --rule is required");
    };
    let (context, input) = AreaInput::from_json(area, raw).context("invalid input")?;
    // The log must be writable before a decision is made: no decision goes unrecorded.
    let log = ctx.audit_log(&config)?;
    let decision = set.decide(&context, &input);
    let mut event = Event::new(Kind::Decision, "policy_eval")
        .target(format!("{area} {}", input.target()))
        .decision(DecisionRecord {
            allow: decision.allow,
            reasons: decision.reasons.clone(),
            policy: decision.policy.clone(),
        })
        .outcome(if decision.allow { "allowed" } else { "denied" })
        .detail("area", area.as_str());
    if let Some(s) = &context.sandbox {
        event = event.sandbox(s.clone());
    }
    event = event.actor(context.actor.clone().unwrap_or_else(|| "cli".into()));
    log.append(event).context("cannot write the audit record")?;
    output::line(&serde_json::to_string_pretty(&decision)?);
    Ok(if decision.allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The audit record of a policy load or reload attempt.
fn reload_event(ev: &ReloadEvent, location: &PolicyLocation) -> Event {
    let mut event = Event::new(Kind::PolicyReload, "reload")
        .target(location.to_string())
        .actor("cordon");
    event = match (&ev.error, ev.applied) {
        (Some(e), _) => event.outcome(format!("refused: {e}")),
        (None, true) => event.outcome("applied"),
        (None, false) => event.outcome("unchanged"),
    };
    if let Some(p) = &ev.policy {
        event = event.detail("policy", p.clone());
    }
    if let Some(p) = &ev.previous {
        event = event.detail("previous", p.clone());
    }
    event
}

fn say(ev: &ReloadEvent) {
    match (&ev.error, &ev.policy) {
        (Some(e), Some(kept)) => output::line(&format!("refused: {e}; keeping {kept}")),
        (Some(e), None) => output::line(&format!(
            "refused: {e}; no policy is loaded, every decision denies"
        )),
        (None, Some(p)) => output::line(&format!("applied {p}")),
        (None, None) => {}
    }
}

fn watch(ctx: &Ctx, args: WatchArgs) -> Result<ExitCode> {
    let config = ctx.config()?;
    let location = config.policy_location(args.dir.as_deref());
    let PolicyLocation::Path(dir) = &location else {
        bail!(
            "nothing to watch: give a policy directory or set [policy] dir (the built-in policies cannot change)"
        );
    };
    let log = Arc::new(ctx.audit_log(&config)?);
    let policy = Arc::new(Policy::empty());
    let policy_config = config.policy_config();
    let opts = config.load_options();
    // Watch before the first load, so that an edit made while it runs is not missed.
    let audit = log.clone();
    let loc = location.clone();
    let _reloader = Reloader::watch(
        policy.clone(),
        dir.clone(),
        policy_config.clone(),
        opts.clone(),
        move |ev| {
            if let Err(e) = audit.append(reload_event(&ev, &loc)) {
                tracing::error!(error = %e, "cannot audit a policy reload");
            }
            say(&ev);
            output::flush();
        },
    )
    .context("cannot watch the policy directory")?;
    // The first load is audited like every reload; if it fails, nothing is loaded and every
    // decision denies until a good edit arrives.
    let first = reload_now(&policy, dir, &policy_config, &opts);
    log.append(reload_event(&first, &location))
        .context("cannot write the audit record")?;
    say(&first);
    output::flush();
    loop {
        std::thread::park();
    }
}
