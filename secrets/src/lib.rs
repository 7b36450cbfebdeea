//! cordon's secret scanner: finds credentials in anything that leaves (egress requests, tool
//! output going back to the model, files, pushes), fast enough to sit in the request path.
//!
//! # Key decisions
//!
//! - **Keywords first.** One Aho-Corasick automaton holds every rule's keywords (ASCII case is
//!   folded by the automaton, so the input is never copied to lower case). A rule's regex runs
//!   only on a bounded window around a hit of one of its keywords, never as a giant alternation
//!   of all rules, and a match must contain the keyword that selected it.
//! - **Streaming by construction.** A whole-input scan is a stream with one chunk. A keyword hit
//!   is examined once its whole window is buffered, so every hit sees the same window however
//!   the input was chunked: findings do not depend on chunk boundaries, and each is reported
//!   once. Between chunks a stream keeps `2 × largest window + longest keyword` bytes.
//! - **Rules are data in gitleaks' TOML format.** The built-in rules (`rules/default.toml`)
//!   are written in it, so the loader that reads a team's existing gitleaks file is the one
//!   every scan uses. Regexes use the `regex` crate (RE2 syntax: linear time on any input).
//! - **Exact secrets.** An operator's real tokens ([`ScannerBuilder::exact_secret`]) are
//!   matched verbatim, in base64 at every alignment, percent-encoded, in hex and JSON-escaped.
//! - **One report per secret.** A rule whose id starts with `generic` (an entropy-gated
//!   catch-all) does not report a value that a specific rule recognises on its own.
//! - **No secret leaves the scanner by default.** A finding carries the rule, the span, the
//!   line, the entropy and a keyed fingerprint (HMAC-SHA-256, 16 hex digits); the value only
//!   with `reveal(true)`.
//!
//! # Security model
//!
//! The input is hostile (the agent chooses what to send). Scanning cannot fail and runs in time
//! linear in the input; memory is bounded by the rule windows. The scanner finds what its rules
//! describe: a secret in a format no rule knows is not found. The rule files are trusted.

#![forbid(unsafe_code)]

pub mod decode;
mod error;
mod exact;
pub mod gitleaks;
mod rule;
mod scanner;

pub use decode::{ContentEncoding, DecodeError, DecodeLimits};
pub use error::RuleError;
pub use rule::{Allowlist, DEFAULT_WINDOW, MAX_WINDOW, RegexTarget, Rule, shannon_entropy};
pub use scanner::{DEFAULT_RULES, Finding, Scanner, ScannerBuilder, Stream, redact};
