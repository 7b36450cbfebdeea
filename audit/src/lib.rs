//! cordon's audit log: one JSON record per operation, hash-chained, durable before the
//! operation is acknowledged.
//!
//! Every tool call, egress request, policy decision, policy reload and sandboxed run leaves a
//! [`Record`] in an append-only JSONL file. Security dashboards ingest it (field names map onto
//! OCSF classes, see `audit/README.md`); `cordon audit verify` proves it whole.
//!
//! # Key decisions
//!
//! - **A hash chain over canonical JSON.** Each record's `prev` is the SHA-256 of the previous
//!   record's canonical form (sorted keys, no white space). Records are written in that same
//!   canonical form, so the line on disk is the hashed text. A `.head` file beside the log holds
//!   the last seq and hash, which makes removing records from the end detectable.
//! - **Group commit on a dedicated thread.** Writing costs about as much as a policy decision;
//!   on its own thread, concurrent callers share one `fdatasync` per batch ([`writer`]).
//! - **Several processes, one chain.** Each batch is written under an `flock`, after re-reading
//!   the tail if another process wrote since; rotation keeps the chain across files.
//! - **No secret can be stored by type.** Findings are a [`RuleId`] and a [`Fingerprint`], whose
//!   constructors refuse anything shaped like a credential.
//! - **A crash leaves a log that verifies.** A final line cut short is reported as a torn tail,
//!   not tampering; the next writer drops it and records that it did.
//!
//! # Security model
//!
//! The log lives outside every sandbox: the agent cannot write it. The chain detects edits,
//! deletions, insertions, reordering and truncation by anyone who does not also rewrite the
//! rest of the chain and the head; against an attacker with write access to the host, send
//! records off the machine. Records carry metadata only: rule ids and fingerprints, never
//! content or secret values.

#![forbid(unsafe_code)]

mod canonical;
mod error;
pub mod read;
mod record;
pub mod segment;
pub mod verify;
pub mod writer;

pub use error::AuditError;
pub use record::{
    DecisionRecord, Event, Finding, FindingError, Fingerprint, GENESIS, Kind, Record, RuleId,
    SCHEMA_VERSION,
};
pub use verify::{Problem, ProblemKind, Report, verify};
pub use writer::{AuditLog, AuditOptions, Durability, Pending, Receipt};
