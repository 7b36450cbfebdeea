//! `cordon doctor`: which isolation features this host offers cordon (each found by trying it),
//! a real sandboxed run, and whether the configured policies and audit log are usable.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Ctx;
use crate::output;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

struct Check {
    name: String,
    ok: bool,
    required: bool,
    detail: String,
}

/// A real sandboxed run of `true` in a throwaway workspace: the features above can each be
/// present and still fail together (a container's seccomp profile, an LSM denying mounts).
fn trial_run(config: &crate::config::Config) -> Check {
    let result = (|| -> Result<String> {
        let dir = std::env::temp_dir().join(format!("cordon-doctor-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let protected = super::run::protected_paths(config).unwrap_or_default();
        let sandbox_config = config.sandbox.sandbox_config(dir.clone(), protected, &[])?;
        let outcome = cordon_sandbox::Sandbox::new(sandbox_config)
            .and_then(|sb| sb.run(&cordon_sandbox::Command::new(["/bin/true"]), &mut |_, _| {}));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = outcome?;
        if !outcome.exit.success() {
            anyhow::bail!("/bin/true exited with {:?}", outcome.exit);
        }
        let limits: Vec<String> = outcome
            .limits
            .iter()
            .filter(|l| matches!(l.name, "memory" | "pids"))
            .map(|l| format!("{} by {:?}", l.name, l.mechanism).to_lowercase())
            .collect();
        Ok(format!(
            "level {}, landlock ABI {}, {}, in {:.1} ms",
            outcome.isolation.level,
            outcome.isolation.landlock_abi.unwrap_or(0),
            limits.join(", "),
            outcome.duration.as_secs_f64() * 1000.0
        ))
    })();
    match result {
        Ok(detail) => Check {
            name: "sandboxed run".into(),
            ok: true,
            required: true,
            detail,
        },
        Err(e) => Check {
            name: "sandboxed run".into(),
            ok: false,
            required: true,
            detail: format!("{e:#}"),
        },
    }
}

impl DoctorArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let mut checks: Vec<Check> = cordon_sandbox::probe()
            .into_iter()
            .map(|f| Check {
                name: f.name.into(),
                ok: f.available,
                required: f.required,
                detail: f.detail,
            })
            .collect();
        let config = ctx.config();
        if let Ok(c) = &config {
            checks.push(trial_run(c));
        }
        let policy = match &config {
            Ok(c) => {
                let loc = c.policy_location(None);
                match loc.load(&c.policy_config(), &c.load_options()) {
                    Ok(set) => Check {
                        name: "policies".into(),
                        ok: true,
                        required: true,
                        detail: format!(
                            "{loc}: {} ({} tests pass)",
                            set.id(),
                            set.tests().passed()
                        ),
                    },
                    Err(e) => Check {
                        name: "policies".into(),
                        ok: false,
                        required: true,
                        detail: format!("{loc}: {e}"),
                    },
                }
            }
            Err(e) => Check {
                name: "config".into(),
                ok: false,
                required: true,
                detail: format!("{e:#}"),
            },
        };
        checks.push(policy);
        if let Ok(c) = &config {
            let audit = match c.audit_path(ctx.audit_flag.as_deref()) {
                Ok(p) => Check {
                    name: "audit log".into(),
                    ok: true,
                    required: true,
                    detail: p.display().to_string(),
                },
                Err(e) => Check {
                    name: "audit log".into(),
                    ok: false,
                    required: true,
                    detail: format!("{e:#}"),
                },
            };
            checks.push(audit);
        }
        let mut failed_required = false;
        for c in &checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok  ",
                (false, true) => "FAIL",
                (false, false) => "warn",
            };
            failed_required |= !c.ok && c.required;
            output::line(&format!("{mark} {:<26} {}", c.name, c.detail));
        }
        Ok(if failed_required {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}
