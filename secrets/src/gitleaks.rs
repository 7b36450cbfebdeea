//! Rule files in gitleaks' TOML format (v8), so teams keep the rules they have.
//!
//! Supported: `[[rules]]` with `id`, `description`, `regex`, `secretGroup`, `entropy`,
//! `keywords`, `path`, per-rule `[[rules.allowlists]]` (and the older single `[rules.allowlist]`)
//! with `regexes`, `regexTarget`, `stopwords`, `paths`, `condition`; global `[allowlist]` /
//! `[[allowlists]]`; `[extend] useDefault` and `disabledRules`. gitleaks-only keys with no
//! meaning here (`tags`, `commits`, `title`) are accepted and ignored; anything else is an
//! error, so a misspelt key cannot silently disable a rule. cordon adds one optional key per
//! rule, `window`: bytes searched each side of a keyword (default 256).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::RuleError;
use crate::rule::{Allowlist, DEFAULT_WINDOW, MAX_WINDOW, RegexTarget, Rule};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    #[allow(dead_code)]
    title: Option<String>,
    #[serde(default)]
    extend: Option<Extend>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Extend {
    #[serde(default)]
    use_default: bool,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    secret_group: Option<usize>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    tags: Vec<String>,
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    #[serde(default)]
    window: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAllowlist {
    #[serde(default)]
    description: String,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    commits: Vec<String>,
    /// Newer gitleaks: a global allowlist limited to some rules.
    #[serde(default)]
    target_rules: Vec<String>,
}

/// A parsed rule file: its rules, its global allowlists (with the rules they target, empty for
/// all), and whether it extends the defaults.
#[derive(Debug, Clone, Default)]
pub struct RuleFile {
    /// The file's own rules.
    pub rules: Vec<Rule>,
    /// Global allowlists: (target rule ids, empty = every rule; allowlist).
    pub allowlists: Vec<(Vec<String>, Allowlist)>,
    /// `[extend] useDefault = true`.
    pub use_default: bool,
    /// `[extend] disabledRules`.
    pub disabled: Vec<String>,
}

fn compile_allowlist(rule: &str, raw: RawAllowlist) -> Result<(Vec<String>, Allowlist), RuleError> {
    let invalid = |why: String| RuleError::Invalid {
        rule: rule.to_owned(),
        why,
    };
    let regex_target = match raw.regex_target.as_deref() {
        None | Some("secret") => RegexTarget::Secret,
        Some("match") => RegexTarget::Match,
        Some("line") => RegexTarget::Line,
        Some(other) => {
            return Err(invalid(format!(
                "regexTarget {other:?} is not secret, match or line"
            )));
        }
    };
    let all = match raw
        .condition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("OR") => false,
        Some("AND") => true,
        Some(other) => return Err(invalid(format!("condition {other:?} is not OR or AND"))),
    };
    let regexes = raw
        .regexes
        .iter()
        .map(|r| Rule::compile_regex(rule, r))
        .collect::<Result<_, _>>()?;
    let paths = raw
        .paths
        .iter()
        .map(|r| Rule::compile_regex(rule, r))
        .collect::<Result<_, _>>()?;
    Ok((
        raw.target_rules,
        Allowlist {
            description: raw.description,
            regexes,
            regex_target,
            stopwords: raw
                .stopwords
                .into_iter()
                .map(|w| w.to_ascii_lowercase())
                .collect(),
            paths,
            all,
        },
    ))
}

fn compile_rule(raw: RawRule) -> Result<Rule, RuleError> {
    let id = raw.id.clone();
    let invalid = |why: &str| RuleError::Invalid {
        rule: id.clone(),
        why: why.to_owned(),
    };
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(invalid("id must be letters, digits, '-', '_' or '.'"));
    }
    let pattern = raw
        .regex
        .as_deref()
        .ok_or_else(|| invalid("has no regex (path-only rules are not supported)"))?;
    let regex = Rule::compile_bytes_regex(&id, pattern)?;
    let groups = regex.captures_len() - 1;
    let secret_group = match raw.secret_group {
        Some(g) if g > groups => {
            return Err(invalid(&format!(
                "secretGroup {g} but the regex has {groups} group(s)"
            )));
        }
        Some(g) => g,
        None => usize::from(groups > 0),
    };
    if let Some(e) = raw.entropy
        && !(0.0..=8.0).contains(&e)
    {
        return Err(invalid("entropy must be between 0 and 8 bits per byte"));
    }
    let window = raw.window.unwrap_or(DEFAULT_WINDOW);
    if window == 0 || window > MAX_WINDOW {
        return Err(invalid("window must be 1 to 16384 bytes"));
    }
    let path = raw
        .path
        .as_deref()
        .map(|p| Rule::compile_regex(&id, p))
        .transpose()?;
    let mut allowlists = Vec::new();
    for a in raw.allowlist.into_iter().chain(raw.allowlists) {
        allowlists.push(compile_allowlist(&id, a)?.1);
    }
    let mut keywords: Vec<String> = raw
        .keywords
        .iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    keywords.retain(|k| !k.is_empty());
    keywords.sort();
    keywords.dedup();
    Ok(Rule {
        id,
        description: raw.description,
        regex,
        secret_group,
        keywords,
        entropy: raw.entropy,
        path,
        allowlists,
        window,
    })
}

/// Parse a gitleaks-format rule file.
pub fn parse(text: &str) -> Result<RuleFile, RuleError> {
    let file: File = toml::from_str(text).map_err(|e| RuleError::Toml(e.to_string()))?;
    let mut seen = BTreeMap::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for raw in file.rules {
        if seen.insert(raw.id.clone(), ()).is_some() {
            return Err(RuleError::Duplicate(raw.id));
        }
        rules.push(compile_rule(raw)?);
    }
    let mut allowlists = Vec::new();
    for a in file.allowlist.into_iter().chain(file.allowlists) {
        allowlists.push(compile_allowlist("global allowlist", a)?);
    }
    let extend = file.extend.unwrap_or_default();
    if let Some(p) = extend.path {
        return Err(RuleError::Invalid {
            rule: "[extend]".into(),
            why: format!(
                "path = {p:?} is not supported; list the rules in one file, or useDefault = true"
            ),
        });
    }
    Ok(RuleFile {
        rules,
        allowlists,
        use_default: extend.use_default,
        disabled: extend.disabled_rules,
    })
}
