//! `cordon run`: one command in the sandbox, its output streamed, its status returned, and one
//! audit record written before cordon exits.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use cordon_audit::{Event, Kind};
use cordon_sandbox::{Command, Sandbox, SandboxError, Stream};
use cordon_secrets::Scanner;
use serde_json::{Value, json};

use super::Ctx;
use crate::output;

/// Exit status when cordon itself fails (the command never ran), as `env` and `docker` do.
const EXIT_CORDON: u8 = 125;
/// The program was found but could not be executed.
const EXIT_CANNOT_EXEC: u8 = 126;
/// The program was not found in the sandbox.
const EXIT_NOT_FOUND: u8 = 127;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workspace, mounted read-write at /workspace. Default: [sandbox] workspace, else the
    /// current directory.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// An egress proxy's unix socket. Default: [sandbox] proxy_socket, else a proxy cordon
    /// starts for this command with the policies in force.
    #[arg(long, conflicts_with = "no_network")]
    proxy_socket: Option<PathBuf>,
    /// No network at all, not even through a proxy.
    #[arg(long)]
    no_network: bool,
    /// Wall-clock limit in seconds; the whole process tree is killed when it runs out.
    #[arg(long)]
    timeout: Option<f64>,
    /// Working directory, relative to the workspace.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Accept running without this feature ("landlock", "protected-creation"); the audit
    /// record says so.
    #[arg(long = "allow-weaker", value_name = "FEATURE")]
    allow_weaker: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<OsString>,
}

impl RunArgs {
    /// Runs the command; cordon's own failures exit 125, so that every other status is the
    /// command's.
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self.run_inner(ctx) {
            Ok(code) => Ok(code),
            Err(e) => {
                output::error(&format!("{e:#}"));
                Ok(ExitCode::from(EXIT_CORDON))
            }
        }
    }

    fn run_inner(self, ctx: &Ctx) -> Result<ExitCode> {
        let config = ctx.config()?;
        let log = std::sync::Arc::new(ctx.audit_log(&config)?);
        let scanner = Scanner::with_defaults().context("loading the secret rules")?;
        let redact = |s: &str| scanner.redacted(s);

        let mut cmd = Command::new(self.command.clone()).cwd(self.cwd.clone().unwrap_or_default());
        cmd.actor = Some("cli".into());
        if let Some(t) = self.timeout {
            if !(t.is_finite() && t > 0.0 && t < 1e9) {
                bail!("--timeout must be a positive number of seconds");
            }
            cmd.timeout = Some(Duration::from_secs_f64(t));
        }

        let started = std::time::Instant::now();
        let result = self.sandbox(&config, &log).and_then(|(sb, _proxy)| {
            sb.run(&cmd, &mut |stream, bytes| {
                output::passthrough(stream == Stream::Stderr, bytes);
            })
            .map(|outcome| (sb.config().name.clone(), outcome))
            .map_err(anyhow::Error::from)
        });
        match result {
            Ok((name, outcome)) => {
                let event = cordon_sandbox::audit_event(&name, &cmd, &outcome, &redact);
                log.append(event).context("writing the audit record")?;
                if outcome.timed_out {
                    output::warn(&format!(
                        "timed out after {:.1}s; the whole process tree was killed",
                        outcome.duration.as_secs_f64()
                    ));
                }
                if outcome.truncated {
                    output::warn("output was cut at the [sandbox] output_kib limit");
                }
                let code = outcome.exit.shell_status();
                Ok(ExitCode::from(u8::try_from(code).unwrap_or(EXIT_CORDON)))
            }
            Err(e) => {
                let argv: Vec<String> = cmd
                    .argv
                    .iter()
                    .map(|a| redact(&a.to_string_lossy()))
                    .collect();
                let (code, outcome) = match e.downcast_ref::<SandboxError>() {
                    Some(SandboxError::Exec { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        (EXIT_NOT_FOUND, "not found")
                    }
                    Some(SandboxError::Exec { .. }) => (EXIT_CANNOT_EXEC, "cannot execute"),
                    Some(SandboxError::Unsupported { .. }) => (EXIT_CORDON, "refused"),
                    _ => (EXIT_CORDON, "error"),
                };
                let event = Event::new(Kind::Sandbox, "run")
                    .actor("cli")
                    .target(argv.join(" "))
                    .outcome(outcome)
                    .duration_ms(u64::try_from(started.elapsed().as_millis()).unwrap_or(0))
                    .detail("argv", json!(argv))
                    .detail("error", Value::String(format!("{e:#}")));
                log.append(event).context("writing the audit record")?;
                output::error(&format!("{e:#}"));
                Ok(ExitCode::from(code))
            }
        }
    }

    fn sandbox(
        &self,
        config: &crate::config::Config,
        log: &std::sync::Arc<cordon_audit::AuditLog>,
    ) -> Result<(Sandbox, Option<super::proxy::Embedded>)> {
        let section = &config.sandbox;
        let workspace = match self.workspace.clone().or_else(|| section.workspace.clone()) {
            Some(w) => w,
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        let protected = protected_paths(config)?;
        let mut sandbox_config =
            section.sandbox_config(workspace, protected, &self.allow_weaker)?;
        if let Some(sock) = &self.proxy_socket {
            sandbox_config.proxy_socket = Some(sock.clone());
        }
        let mut embedded = None;
        if self.no_network {
            sandbox_config.proxy_socket = None;
        } else if let Some(socket) = sandbox_config.proxy_socket.clone() {
            // A standalone `cordon proxy`: its placeholders and CA, as it published them.
            if let Some(p) = super::proxy::published(&socket)? {
                if sandbox_config.ca_file.is_none() {
                    sandbox_config.ca_file = p.ca_cert;
                }
                sandbox_config.env.extend(p.placeholders);
            }
        } else {
            let proxy = super::proxy::Embedded::start(
                config,
                std::sync::Arc::clone(log),
                Some(sandbox_config.name.clone()),
            )?;
            sandbox_config.proxy_socket = Some(proxy.socket.clone());
            // With interception on, the command trusts cordon's CA (and only through the
            // variables every common client reads; the system store stays as it is).
            if sandbox_config.ca_file.is_none() {
                sandbox_config.ca_file = proxy.ca_cert.clone();
            }
            // Swapped credentials: the command sees only their placeholders.
            sandbox_config
                .env
                .extend(proxy.placeholders.iter().cloned());
            embedded = Some(proxy);
        }
        Ok((Sandbox::new(sandbox_config)?, embedded))
    }
}

/// The protected-path patterns of the files policy in force (`data.cordon.files.protected`):
/// the same set the policy checks file tools against, so the sandbox and the policy agree.
/// A policy that does not define it is refused rather than read as "nothing is protected".
pub fn protected_paths(config: &crate::config::Config) -> Result<Vec<String>> {
    let location = config.policy_location(None);
    let set = location
        .load(&config.policy_config(), &config.load_options())
        .with_context(|| format!("cannot load policies from {location}"))?;
    let value = set
        .eval_rule("data.cordon.files.protected", &json!({}))
        .context("evaluating data.cordon.files.protected")?;
    let Some(Value::Array(items)) = value else {
        bail!(
            "the files policy defines no list data.cordon.files.protected; the sandbox needs it \
             to know which workspace paths stay read-only"
        );
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => bail!("data.cordon.files.protected holds a non-string: {other}"),
        })
        .collect()
}
