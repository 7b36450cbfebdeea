//! What this host offers, found by trying: a throwaway clone per namespace, the landlock
//! version query, the seccomp actions list, a cgroup directory. `cordon doctor` prints this;
//! [`crate::Sandbox::new`] refuses on what is missing.

use std::ffi::c_int;

use crate::cgroup;
use crate::landlock_rules;

/// One isolation feature and whether the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Its name, as errors and `doctor` say it.
    pub name: &'static str,
    /// Whether cordon can use it here.
    pub available: bool,
    /// Required unless the operator accepts a weaker level.
    pub required: bool,
    /// What was found, or why not.
    pub detail: String,
}

const NS: &[(&str, c_int)] = &[
    ("mount namespace", libc::CLONE_NEWNS),
    ("pid namespace", libc::CLONE_NEWPID),
    ("ipc namespace", libc::CLONE_NEWIPC),
    ("uts namespace", libc::CLONE_NEWUTS),
    ("network namespace", libc::CLONE_NEWNET),
    ("cgroup namespace", libc::CLONE_NEWCGROUP),
];

/// Clones a child with `flags` that exits at once; the errno when the kernel refuses.
fn try_clone(flags: c_int) -> Result<(), i32> {
    // SAFETY: fork-like clone; the child only calls _exit.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    if rc == 0 {
        // SAFETY: leaving the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(rc as libc::pid_t, &mut status, 0) };
    Ok(())
}

fn describe(errno: i32) -> String {
    let e = std::io::Error::from_raw_os_error(errno);
    match errno {
        libc::EPERM => format!(
            "{e} (unprivileged user namespaces disabled, or a container without the privilege)"
        ),
        libc::ENOSPC => format!("{e} (user.max_user_namespaces or a namespace limit reached)"),
        libc::EINVAL => format!("{e} (the kernel lacks this namespace type)"),
        _ => e.to_string(),
    }
}

/// Checks the namespaces a run needs; the first missing one and why.
pub(crate) fn namespaces() -> Result<(), (&'static str, String)> {
    try_clone(libc::CLONE_NEWUSER).map_err(|e| ("user namespace", describe(e)))?;
    let all = NS.iter().fold(libc::CLONE_NEWUSER, |acc, (_, f)| acc | f);
    if try_clone(all).is_ok() {
        return Ok(());
    }
    for (name, flag) in NS {
        try_clone(libc::CLONE_NEWUSER | flag).map_err(|e| (*name, describe(e)))?;
    }
    Err((
        "namespaces",
        "refused together though each works alone".into(),
    ))
}

/// Whether seccomp can hand calls to a user-space supervisor.
pub(crate) fn seccomp_user_notif() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .is_ok_and(|s| s.split_whitespace().any(|a| a == "user_notif"))
}

/// Every feature, for `cordon doctor`.
pub fn probe() -> Vec<Feature> {
    let mut out = Vec::new();
    let user = try_clone(libc::CLONE_NEWUSER);
    out.push(Feature {
        name: "user namespace",
        available: user.is_ok(),
        required: true,
        detail: user.map_or_else(describe, |()| "created".into()),
    });
    for (name, flag) in NS {
        let r = try_clone(libc::CLONE_NEWUSER | flag);
        out.push(Feature {
            name,
            available: r.is_ok(),
            required: true,
            detail: r.map_or_else(describe, |()| "created".into()),
        });
    }
    let abi = landlock_rules::kernel_abi();
    out.push(Feature {
        name: "landlock",
        available: abi > 0,
        required: true,
        detail: if abi == 0 {
            "not available (kernel without CONFIG_SECURITY_LANDLOCK, or not in lsm=)".into()
        } else {
            let mut d = format!("ABI {abi}");
            if abi >= 4 {
                d.push_str(", TCP rules");
            }
            if abi >= 6 {
                d.push_str(", signal and abstract-socket scoping");
            }
            d
        },
    });
    let filter = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail");
    out.push(Feature {
        name: "seccomp",
        available: filter.is_ok(),
        required: true,
        detail: filter.as_ref().map_or_else(
            |_| "no /proc/sys/kernel/seccomp/actions_avail (kernel without seccomp filters)".into(),
            |a| format!("actions: {}", a.trim()),
        ),
    });
    out.push(Feature {
        name: "seccomp user notification",
        available: seccomp_user_notif(),
        required: true,
        detail: if seccomp_user_notif() {
            "guards protected paths that do not exist yet".into()
        } else {
            "missing: protected paths guarded only where they exist (--allow-weaker protected-creation)".into()
        },
    });
    let cg = cgroup::available();
    out.push(Feature {
        name: "cgroups",
        available: cg.is_some(),
        required: false,
        detail: match cg {
            Some(cgroup::Version::V2) => "cgroup v2 memory and pids delegated".into(),
            Some(cgroup::Version::V1) => "cgroup v1 memory and pids hierarchies writable".into(),
            None => "none usable: memory and process limits fall back to rlimits (per process; RLIMIT_NPROC does not bind host root)".into(),
        },
    });
    out
}
