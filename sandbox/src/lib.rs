//! cordon's Linux sandbox. Every command an agent runs executes here: in new user, mount, pid,
//! ipc, uts, network and cgroup namespaces, on a read-only view of the system with the
//! workspace read-write at `/workspace`, under landlock, a seccomp filter and resource limits,
//! with no network but a bridge to the egress proxy.
//!
//! The crate is synchronous (no tokio) and the only one in cordon with `unsafe`; every block says
//! why it is sound. Choices of primitives, and why:
//!
//! - **libc** for the system calls between `clone` and `execve` (`child`): the parent may be
//!   multi-threaded, so the child must not allocate or take locks, and wrappers that build
//!   `CString`s or return `Vec`s cannot run there. Every input is prepared by the parent.
//! - **landlock** (the crate) for ABI negotiation and ruleset creation with hard requirements;
//!   the path rules for the new root are added by the child with the same two system calls the
//!   crate uses, because those inodes exist only after `pivot_root`.
//! - **seccomp**: a small BPF builder of our own, because `seccompiler` has one match action per
//!   filter, no `SECCOMP_RET_USER_NOTIF` and no x32 range check (see `seccomp`).
//! - **globset** for the protected-path patterns, the matcher ripgrep uses.
//! - Raw `clone` (not `fork` + `unshare`) so the child is the init of its pid namespace from its
//!   first instruction and a pidfd comes back atomically (`CLONE_PIDFD`).
//!
//! The child stays as the init (pid 1) of the new pid namespace and runs the command as its
//! child: the command keeps normal signal semantics (a kernel-sent SIGXFSZ kills it; as pid 1 it
//! would be ignored), orphans are reaped, and when the command exits the init reports its
//! status and exits, so the kernel kills everything left behind. A SIGKILL to the init (the
//! timeout) ends the whole tree.

mod audit;
mod bridge;
mod cancel;
mod caps;
mod cgroup;
mod child;
mod config;
mod error;
mod landlock_rules;
mod notify;
mod outcome;
mod plan;
mod prepare;
mod probe;
mod protect;
mod sandbox;
mod seccomp;
mod stage;
mod stdin;

pub use audit::{MAX_ARGV_CHARS, event as audit_event};
pub use cancel::{Cancel, Signal};
pub use config::{
    Command, DEFAULT_BRIDGE_PORT, DEFAULT_PASS_ENV, Downgrades, Limits, SandboxConfig, WORKSPACE,
};
pub use error::SandboxError;
pub use landlock_rules::kernel_abi as landlock_abi;
pub use outcome::{AppliedLimit, Exit, Isolation, Mechanism, Outcome};
pub use plan::{CA_PATH, SANDBOX_PATH};
pub use prepare::NAMESPACES;
pub use probe::{Feature, probe};
pub use protect::{MAX_SCAN_ENTRIES, Protected};
pub use sandbox::{Sandbox, Stream};
pub use stdin::Stdin;
