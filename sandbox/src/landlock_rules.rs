//! The landlock layer: a second, kernel-enforced filesystem and TCP boundary inside the mount
//! namespace, so a mistake in the mount table alone does not open the host.
//!
//! The `landlock` crate negotiates the ABI and creates the ruleset (handled rights, the TCP
//! connect rule for the bridge port, the ABI 6 scopes) in the parent. The path rules are added
//! by the child after `pivot_root`, because the new root, `/tmp` and `/dev/pts` only exist there;
//! that part is two raw system calls on pre-built data (see `child`).

use std::ffi::CString;
use std::os::fd::OwnedFd;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};

use crate::SandboxError;
use crate::child::PathRule;

/// The landlock ABI the running kernel offers (0 when landlock is absent or disabled).
pub fn kernel_abi() -> u8 {
    // SAFETY: the documented version query: null attributes, size 0, the VERSION flag.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u8::try_from(v).unwrap_or(0)
}

/// A created ruleset and the path rules the child adds to it.
pub(crate) struct Plan {
    pub fd: OwnedFd,
    pub rules: Vec<PathRule>,
}

/// Builds the ruleset for `abi`: read and execute everywhere visible, everything in the
/// workspace and the private temporary directories, devices usable, TCP connect to the bridge
/// port only, no TCP bind, and (ABI 6) no abstract unix sockets or signals across the boundary.
pub(crate) fn plan(abi: u8, bridge_port: Option<u16>) -> Result<Plan, SandboxError> {
    let level = ABI::from(i32::from(abi));
    let unsupported = |e: landlock::RulesetError| SandboxError::Unsupported {
        feature: "landlock",
        reason: e.to_string(),
        hint: "--allow-weaker landlock",
    };
    let all = AccessFs::from_all(level);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(unsupported)?;
    if abi >= 4 {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(level))
            .map_err(unsupported)?;
    }
    if abi >= 6 {
        ruleset = ruleset.scope(Scope::from_all(level)).map_err(unsupported)?;
    }
    let mut created = ruleset.create().map_err(unsupported)?;
    if abi >= 4
        && let Some(port) = bridge_port
    {
        created = created
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(unsupported)?;
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| SandboxError::Unsupported {
        feature: "landlock",
        reason: "the kernel returned no ruleset".into(),
        hint: "--allow-weaker landlock",
    })?;

    let read = bits(AccessFs::from_read(level));
    let file = bits(AccessFs::from_file(level));
    let devices = bits(AccessFs::ReadFile | AccessFs::WriteFile)
        | (bits(AccessFs::from_all(level)) & bits(AccessFs::IoctlDev.into()));
    // Character and block devices cannot be made even where everything else may.
    let writable = bits(all) & !bits(AccessFs::MakeChar | AccessFs::MakeBlock);
    let mut rules = vec![rule("/", read)];
    for dir in [crate::config::WORKSPACE, "/tmp", "/dev/shm"] {
        rules.push(rule(dir, writable));
    }
    for dev in crate::config::DEVICE_NODES {
        rules.push(rule(dev, devices & file));
    }
    rules.push(rule("/dev/pts", read | devices));
    Ok(Plan { fd, rules })
}

fn bits(flags: BitFlags<AccessFs>) -> u64 {
    flags.bits()
}

fn rule(path: &str, access: u64) -> PathRule {
    PathRule {
        // The paths are constants without NUL bytes.
        path: CString::new(path).unwrap_or_default(),
        access,
    }
}
