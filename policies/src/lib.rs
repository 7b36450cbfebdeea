//! cordon's policy layer: every decision point in cordon asks it one question and gets one
//! typed answer.
//!
//! A decision point (the egress proxy on CONNECT, the MCP server before a tool call, the
//! sandbox before a write) builds an [`AreaInput`], calls [`Policy::decide`], and enforces
//! [`Decision::allow`]. The answer comes from `data.cordon.<area>.decision` in the loaded
//! policy set, which must be an object `{"allow": bool, "reasons": [string], ...}`.
//!
//! # Key decisions
//!
//! - **Deny by default, and never an error.** [`Policy::decide`] returns a [`Decision`] in every
//!   case. No policy, a missing package, an undefined result, a result of the wrong shape, an
//!   evaluation error and an evaluation past its time limit are all denies, and
//!   [`Decision::fallback`] says which, so the caller cannot forget to handle a failure.
//! - **regorus for `.rego` sources**, with strict builtin errors: in non-strict mode a malformed
//!   CIDR makes `net.cidr_contains` undefined, and an undefined "blocked" check reads as "not
//!   blocked". The engine is cloned per evaluation instead of locked.
//! - **OPA Wasm behind the `opa-wasm` feature**, for teams that build bundles with `opa build -t
//!   wasm`; same contract, entrypoints named `cordon/<area>/decision`. Fuel bounds each run.
//! - **Atomic reload.** A [`PolicySet`] is immutable; [`Policy`] swaps whole sets through
//!   `arc-swap`, so a concurrent decision sees the old set or the new one, never a mix. A set
//!   whose `test_*` rules fail is refused and the last good set stays ([`reload`]).
//! - **Plain data for most teams.** cordon.toml's lists become `data.cordon.config`
//!   ([`PolicyConfig`]); host patterns are validated and indexed in Rust, so a thousand-host
//!   allowlist is a map lookup in Rego.
//! - **Inputs are typed and normalised** ([`input`]) before any policy sees them.
//!
//! # Security model
//!
//! Trusted: the policy files and cordon.toml (the operator's). Untrusted: every input, which
//! comes from the agent's actions. Promised: a decision is `allow` only if the loaded policy
//! evaluated, within its limit, to an `allow: true` of the right shape. Not promised: that a
//! policy the operator wrote is itself sensible; the default set and its tests are the model.
//! Evaluation does no I/O: regorus has no `http.send`, and the Wasm backend links no host calls.

#![cfg_attr(not(test), forbid(unsafe_code))]

mod area;
mod backend;
pub mod config;
mod decision;
pub mod defaults;
mod error;
pub mod input;
mod policy;
pub mod reload;
pub mod source;
pub mod testing;

pub use area::{Area, UnknownArea};
pub use config::{ConfigError, PolicyConfig};
pub use decision::{Decision, Fallback, SecretAction};
pub use error::LoadError;
pub use input::{AreaInput, Context, InputError};
pub use policy::{EvalError, LoadOptions, Policy, PolicyLocation, PolicySet};
pub use reload::{ReloadEvent, Reloader};
