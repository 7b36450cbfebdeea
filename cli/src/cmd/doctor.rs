//! `cordon doctor`: what this host offers cordon, read from the kernel's own interfaces, and
//! whether the configured policies and audit log are usable.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Ctx;
use crate::output;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

struct Check {
    name: &'static str,
    ok: bool,
    required: bool,
    detail: String,
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn user_namespaces() -> Check {
    let max = read("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok());
    let debian_knob = read("/proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let (ok, detail) = match (max, debian_knob.as_deref(), apparmor.as_deref()) {
        (Some(0), _, _) => (false, "user.max_user_namespaces is 0".to_owned()),
        (None, _, _) => (
            false,
            "/proc/sys/user/max_user_namespaces is missing (kernel without CONFIG_USER_NS)"
                .to_owned(),
        ),
        (_, Some("0"), _) => (false, "kernel.unprivileged_userns_clone is 0".to_owned()),
        (_, _, Some("1")) => (
            false,
            "AppArmor restricts unprivileged user namespaces".to_owned(),
        ),
        (Some(n), _, _) => (true, format!("up to {n}")),
    };
    Check {
        name: "user namespaces",
        ok,
        required: true,
        detail,
    }
}

fn namespace(kind: &'static str, name: &'static str) -> Check {
    let ok = Path::new("/proc/self/ns").join(kind).exists();
    Check {
        name,
        ok,
        required: true,
        detail: if ok {
            "supported".into()
        } else {
            format!("/proc/self/ns/{kind} is missing")
        },
    }
}

fn landlock() -> Check {
    let lsms = read("/sys/kernel/security/lsm");
    let ok = lsms
        .as_deref()
        .is_some_and(|l| l.split(',').any(|m| m == "landlock"));
    let detail = match lsms {
        Some(l) if ok => format!("active LSMs: {l}"),
        Some(l) => format!("landlock not in the active LSMs ({l}); boot with lsm=...,landlock"),
        None => "/sys/kernel/security/lsm is unreadable (securityfs not mounted?)".into(),
    };
    Check {
        name: "landlock",
        ok,
        required: true,
        detail,
    }
}

fn seccomp() -> Check {
    let actions = read("/proc/sys/kernel/seccomp/actions_avail");
    let ok = actions
        .as_deref()
        .is_some_and(|a| a.contains("errno") && a.contains("kill_process"));
    Check {
        name: "seccomp filters",
        ok,
        required: true,
        detail: actions.map_or_else(
            || "/proc/sys/kernel/seccomp is missing".into(),
            |a| format!("actions: {a}"),
        ),
    }
}

fn cgroups() -> Check {
    let controllers = read("/sys/fs/cgroup/cgroup.controllers");
    match controllers {
        Some(c) => {
            let want = ["memory", "pids", "cpu"];
            let missing: Vec<&str> = want
                .iter()
                .copied()
                .filter(|w| !c.split(' ').any(|x| x == *w))
                .collect();
            Check {
                name: "cgroup v2",
                ok: missing.is_empty(),
                required: false,
                detail: if missing.is_empty() {
                    format!("controllers: {c}")
                } else {
                    format!("missing controllers {missing:?}; rlimits are used instead")
                },
            }
        }
        None => Check {
            name: "cgroup v2",
            ok: false,
            required: false,
            detail: "no unified hierarchy at /sys/fs/cgroup; rlimits are used instead".into(),
        },
    }
}

impl DoctorArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let mut checks = vec![
            user_namespaces(),
            namespace("mnt", "mount namespaces"),
            namespace("pid", "pid namespaces"),
            namespace("net", "network namespaces"),
            namespace("ipc", "ipc namespaces"),
            namespace("uts", "uts namespaces"),
            namespace("cgroup", "cgroup namespaces"),
            landlock(),
            seccomp(),
            cgroups(),
        ];
        let config = ctx.config();
        let policy = match &config {
            Ok(c) => {
                let loc = c.policy_location(None);
                match loc.load(&c.policy_config(), &c.load_options()) {
                    Ok(set) => Check {
                        name: "policies",
                        ok: true,
                        required: true,
                        detail: format!(
                            "{loc}: {} ({} tests pass)",
                            set.id(),
                            set.tests().passed()
                        ),
                    },
                    Err(e) => Check {
                        name: "policies",
                        ok: false,
                        required: true,
                        detail: format!("{loc}: {e}"),
                    },
                }
            }
            Err(e) => Check {
                name: "config",
                ok: false,
                required: true,
                detail: format!("{e:#}"),
            },
        };
        checks.push(policy);
        if let Ok(c) = &config {
            let audit = match c.audit_path(ctx.audit_flag.as_deref()) {
                Ok(p) => Check {
                    name: "audit log",
                    ok: true,
                    required: true,
                    detail: p.display().to_string(),
                },
                Err(e) => Check {
                    name: "audit log",
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
            output::line(&format!("{mark} {:<20} {}", c.name, c.detail));
        }
        Ok(if failed_required {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}
