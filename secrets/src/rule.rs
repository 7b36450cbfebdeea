//! A detection rule and its allowlists, compiled.

use regex::Regex;
use regex::bytes::Regex as BytesRegex;

use crate::error::RuleError;

/// What an allowlist regex is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexTarget {
    /// The secret (the rule's secret group). gitleaks' default.
    Secret,
    /// The rule's whole match.
    Match,
    /// The line the match starts on.
    Line,
}

/// Conditions under which a finding is not reported.
#[derive(Debug, Clone)]
pub struct Allowlist {
    /// Human-readable reason for the exception.
    pub description: String,
    /// Regexes matched against [`Allowlist::regex_target`].
    pub regexes: Vec<Regex>,
    /// What `regexes` are matched against.
    pub regex_target: RegexTarget,
    /// Substrings that, found in the secret (case-insensitively), make it a placeholder.
    pub stopwords: Vec<String>,
    /// Regexes matched against the file path (when scanning files).
    pub paths: Vec<Regex>,
    /// With `true`, every non-empty criterion must hold (gitleaks `condition = "AND"`); with
    /// `false`, any one is enough.
    pub all: bool,
}

impl Allowlist {
    /// Whether this allowlist excuses a finding.
    pub(crate) fn excuses(
        &self,
        secret: &str,
        whole: &str,
        line: &str,
        path: Option<&str>,
    ) -> bool {
        let target = match self.regex_target {
            RegexTarget::Secret => secret,
            RegexTarget::Match => whole,
            RegexTarget::Line => line,
        };
        let lower = secret.to_ascii_lowercase();
        let mut checks: Vec<bool> = Vec::with_capacity(3);
        if !self.regexes.is_empty() {
            checks.push(self.regexes.iter().any(|r| r.is_match(target)));
        }
        if !self.stopwords.is_empty() {
            checks.push(self.stopwords.iter().any(|w| lower.contains(w.as_str())));
        }
        if !self.paths.is_empty() {
            checks.push(path.is_some_and(|p| self.paths.iter().any(|r| r.is_match(p))));
        }
        if checks.is_empty() {
            return false;
        }
        if self.all {
            checks.iter().all(|c| *c)
        } else {
            checks.iter().any(|c| *c)
        }
    }
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, used in findings, policies and baselines.
    pub id: String,
    /// What it finds.
    pub description: String,
    /// The detection regex, over bytes: input need not be UTF-8.
    pub regex: BytesRegex,
    /// Which capture group is the secret (0: the whole match). gitleaks' default: the first
    /// group if there is one, else the whole match.
    pub secret_group: usize,
    /// Lower-case keywords; the rule runs only near one of them. Empty: the rule runs over
    /// everything (slow: avoid).
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy (bits per byte) of the secret.
    pub entropy: Option<f64>,
    /// Only files whose path matches (file scans only).
    pub path: Option<Regex>,
    /// Exceptions.
    pub allowlists: Vec<Allowlist>,
    /// Bytes searched on each side of a keyword hit.
    pub window: usize,
}

/// Default bytes searched on each side of a keyword: enough for any token or assignment.
pub const DEFAULT_WINDOW: usize = 256;
/// Largest window a rule may ask for (private key blocks).
pub const MAX_WINDOW: usize = 16 * 1024;

impl Rule {
    pub(crate) fn compile_bytes_regex(id: &str, pattern: &str) -> Result<BytesRegex, RuleError> {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(8 * 1024 * 1024)
            .build()
            .map_err(|e| RuleError::Regex {
                rule: id.to_owned(),
                why: e.to_string(),
            })
    }

    pub(crate) fn compile_regex(id: &str, pattern: &str) -> Result<Regex, RuleError> {
        regex::RegexBuilder::new(pattern)
            .size_limit(8 * 1024 * 1024)
            .build()
            .map_err(|e| RuleError::Regex {
                rule: id.to_owned(),
                why: e.to_string(),
            })
    }
}

/// Shannon entropy of `s` in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in s {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(shannon_entropy(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") > 4.0);
    }
}
