//! Errors of the scanner. Scanning itself cannot fail; loading rules can.

/// A rule file or rule that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The TOML does not parse or has the wrong shape.
    #[error("rule file does not parse: {0}")]
    Toml(String),
    /// A regex does not compile (with the `regex` crate's syntax, which is RE2's).
    #[error("rule {rule}: regex does not compile: {why}")]
    Regex {
        /// The rule id.
        rule: String,
        /// The compiler's message.
        why: String,
    },
    /// A rule whose fields contradict each other.
    #[error("rule {rule}: {why}")]
    Invalid {
        /// The rule id.
        rule: String,
        /// What is wrong.
        why: String,
    },
    /// Two rules share an id.
    #[error("rule id {0} is defined twice")]
    Duplicate(String),
}
