//! Plain policy data from cordon.toml, exposed to Rego as `data.cordon.config`.
//!
//! Most teams never write Rego: they list hosts, presets, protected paths and branches, and the
//! default policies read those lists. This module validates the lists (a typo in a host pattern
//! is a load error, not a silent no-match) and derives lookup tables from them, so that a
//! decision over a thousand allowed hosts is a map lookup in Rego rather than a scan.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The policy-relevant sections of cordon.toml. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// `[network]`
    pub network: NetworkConfig,
    /// `[files]`
    pub files: FilesConfig,
    /// `[git]`
    pub git: GitConfig,
    /// `[tools]`
    pub tools: ToolsConfig,
    /// `[secrets]`
    pub secrets: SecretsConfig,
    /// `[policy.data]`: free-form data merged into `data.cordon.config` for custom Rego.
    pub data: Map<String, Value>,
}

/// `[network]`: where egress may go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Host patterns: `github.com`, `*.githubusercontent.com` (subdomains only, never the apex),
    /// each optionally with `:port`. Empty means no egress at all.
    pub allow: Vec<String>,
    /// Named host lists to add: see [`PRESETS`].
    pub presets: Vec<String>,
    /// Address ranges exempt from the always-denied ranges (loopback, private, metadata, ...),
    /// e.g. `["127.0.0.0/8"]` for tests or an internal mirror.
    pub allow_addresses: Vec<String>,
}

/// `[files]`: paths the agent may not change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Glob patterns added to the default protected set, matched at every depth.
    pub protect: Vec<String>,
    /// Glob patterns the agent may not read either (e.g. `.env`), matched at every depth.
    pub deny_read: Vec<String>,
}

/// `[git]`: what may be pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    /// Branches no push may update. Default `main`, `master`.
    pub protected_branches: Vec<String>,
    /// Allow pushes that rewrite history. Default false.
    pub allow_force_push: bool,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            protected_branches: vec!["main".into(), "master".into()],
            allow_force_push: false,
        }
    }
}

/// `[tools]`: MCP tools to refuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tool names denied outright.
    pub deny: Vec<String>,
    /// Tools denied when one argument matches a regular expression.
    pub deny_arguments: Vec<ArgumentRule>,
}

/// A deny rule on one tool argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentRule {
    /// The tool name.
    pub tool: String,
    /// The argument name (top-level key of the arguments object).
    pub argument: String,
    /// A regular expression matched against the argument's string value.
    pub pattern: String,
}

/// `[secrets]`: what to do with findings, by channel, rule and destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Action for findings in egress. Default `block`.
    pub egress: String,
    /// Action for findings in tool output. Default `redact`.
    pub tool_output: String,
    /// Action for findings in files the agent writes. Default `allow` (the workspace is its own).
    pub file_write: String,
    /// Action for findings in pushed commits. Default `block`.
    pub git_push: String,
    /// Per-rule action overrides, by rule id.
    pub rules: BTreeMap<String, String>,
    /// Per-destination overrides: host pattern (as in `[network] allow`) to action.
    pub destinations: BTreeMap<String, String>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            egress: "block".into(),
            tool_output: "redact".into(),
            file_write: "allow".into(),
            git_push: "block".into(),
            rules: BTreeMap::new(),
            destinations: BTreeMap::new(),
        }
    }
}

/// Named host lists an operator can enable with `[network] presets`.
pub const PRESETS: &[(&str, &[&str])] = &[
    (
        "package-registries",
        &[
            "crates.io:443",
            "index.crates.io:443",
            "static.crates.io:443",
            "pypi.org:443",
            "files.pythonhosted.org:443",
            "registry.npmjs.org:443",
            "registry.yarnpkg.com:443",
            "proxy.golang.org:443",
            "sum.golang.org:443",
            "repo.maven.apache.org:443",
            "repo1.maven.org:443",
            "rubygems.org:443",
            "index.rubygems.org:443",
            "api.nuget.org:443",
        ],
    ),
    (
        "github",
        &[
            "github.com:443",
            "api.github.com:443",
            "codeload.github.com:443",
            "*.githubusercontent.com:443",
        ],
    ),
    ("gitlab", &["gitlab.com:443", "registry.gitlab.com:443"]),
];

/// A config value that cannot become policy data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A host pattern that is not `host`, `*.suffix`, optionally with `:port`.
    #[error("invalid host pattern {pattern:?} in [{section}]: {why}")]
    HostPattern {
        /// The section (e.g. `network] allow`).
        section: &'static str,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A preset name that does not exist.
    #[error("unknown network preset {0:?} (known: {known})", known = preset_names())]
    UnknownPreset(String),
    /// An address range that does not parse.
    #[error(
        "invalid address range {0:?} in [network] allow_addresses (expected e.g. 127.0.0.0/8 or ::1)"
    )]
    AddressRange(String),
    /// A secrets action that is not allow, redact or block.
    #[error("invalid secrets action {value:?} for {key} (expected allow, redact or block)")]
    SecretAction {
        /// The key it was set for.
        key: String,
        /// The value.
        value: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid pattern {pattern:?} for tool {tool:?}: {why}")]
    ArgumentPattern {
        /// The tool.
        tool: String,
        /// The pattern.
        pattern: String,
        /// The compiler's complaint.
        why: String,
    },
    /// A `[policy.data]` key that would shadow a built-in section.
    #[error("[policy.data] key {0:?} collides with the built-in [{0}] section")]
    DataCollision(String),
}

fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One parsed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// The exact host, or the suffix with its leading dot for wildcards.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

fn parse_host_pattern(raw: &str, section: &'static str) -> Result<HostPattern, ConfigError> {
    let err = |why| ConfigError::HostPattern {
        section,
        pattern: raw.to_owned(),
        why,
    };
    let lower = raw.trim().to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p
                .parse()
                .map_err(|_| err("the port is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(err("the port is not a number from 1 to 65535"));
            }
            (h.to_owned(), Some(port))
        }
        None => (lower, None),
    };
    let host = host.trim_end_matches('.');
    let (name, wildcard) = match host.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    if name.is_empty() {
        return Err(err("the host is empty"));
    }
    if name.contains('*') {
        return Err(err(
            "a wildcard may only stand as the first label, as in *.example.com",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        || name.starts_with('.')
        || name.contains("..")
    {
        return Err(err(
            "a host is letters, digits, '-', '_' and '.' separated labels (IDN in punycode)",
        ));
    }
    if wildcard && !name.contains('.') {
        return Err(err("a wildcard needs a domain with at least two labels"));
    }
    Ok(HostPattern {
        host: if wildcard {
            format!(".{name}")
        } else {
            name.to_owned()
        },
        wildcard,
        port,
    })
}

fn parse_action(key: &str, value: &str) -> Result<(), ConfigError> {
    match value {
        "allow" | "redact" | "block" => Ok(()),
        _ => Err(ConfigError::SecretAction {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// Merge `ports` (None = any port) into a list where an empty list means any.
fn add_port(entry: &mut Option<Vec<u16>>, port: Option<u16>) {
    match (entry.as_mut(), port) {
        (None, p) => *entry = Some(p.into_iter().collect()),
        (Some(list), Some(p)) if !list.is_empty() => {
            if !list.contains(&p) {
                list.push(p);
                list.sort_unstable();
            }
        }
        (Some(list), _) => list.clear(),
    }
}

impl PolicyConfig {
    /// Validate the config and build `data.cordon.config`.
    pub fn to_data(&self) -> Result<Value, ConfigError> {
        let mut patterns: Vec<HostPattern> = Vec::new();
        for raw in &self.network.allow {
            patterns.push(parse_host_pattern(raw, "network] allow")?);
        }
        for name in &self.network.presets {
            let hosts = PRESETS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, h)| *h)
                .ok_or_else(|| ConfigError::UnknownPreset(name.clone()))?;
            for raw in hosts {
                patterns.push(parse_host_pattern(raw, "network] presets")?);
            }
        }
        let mut hosts: BTreeMap<String, Option<Vec<u16>>> = BTreeMap::new();
        let mut suffixes: BTreeMap<String, Option<Vec<u16>>> = BTreeMap::new();
        for p in patterns {
            let table = if p.wildcard {
                &mut suffixes
            } else {
                &mut hosts
            };
            add_port(table.entry(p.host).or_default(), p.port);
        }
        let ports = |v: Option<Vec<u16>>| json!(v.unwrap_or_default());
        let hosts: Map<String, Value> = hosts.into_iter().map(|(h, p)| (h, ports(p))).collect();
        // Suffixes open on any port are matched by one builtin call
        // (`strings.any_suffix_match`); only port-restricted ones need a loop in Rego.
        let any_port_suffixes: Vec<&String> = suffixes
            .iter()
            .filter(|(_, p)| p.as_ref().is_none_or(Vec::is_empty))
            .map(|(s, _)| s)
            .collect();
        let port_suffixes: Vec<Value> = suffixes
            .iter()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| !p.is_empty()))
            .map(|(s, p)| json!({"suffix": s, "ports": p}))
            .collect();
        let any_port_suffixes = json!(any_port_suffixes);
        let suffixes: Vec<Value> = suffixes
            .into_iter()
            .map(|(s, p)| json!({"suffix": s, "ports": ports(p)}))
            .collect();

        let mut allow_addresses = Vec::new();
        for raw in &self.network.allow_addresses {
            let net = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::AddressRange(raw.clone()))?;
            allow_addresses.push(net.trunc().to_string());
        }

        let s = &self.secrets;
        for (key, value) in [
            ("egress", &s.egress),
            ("tool_output", &s.tool_output),
            ("file_write", &s.file_write),
            ("git_push", &s.git_push),
        ] {
            parse_action(key, value)?;
        }
        for (rule, action) in &s.rules {
            parse_action(&format!("rule {rule}"), action)?;
        }
        let mut destinations = Vec::new();
        for (pattern, action) in &s.destinations {
            parse_action(&format!("destination {pattern}"), action)?;
            let p = parse_host_pattern(pattern, "secrets] destinations")?;
            destinations.push(json!({"host": p.host, "wildcard": p.wildcard, "action": action}));
        }
        for rule in &self.tools.deny_arguments {
            if let Err(e) = regex_syntax_check(&rule.pattern) {
                return Err(ConfigError::ArgumentPattern {
                    tool: rule.tool.clone(),
                    pattern: rule.pattern.clone(),
                    why: e,
                });
            }
        }

        let mut out = Map::new();
        out.insert(
            "network".into(),
            json!({
                "allow": self.network.allow,
                "presets": self.network.presets,
                "allow_addresses": allow_addresses,
                "hosts": hosts,
                "suffixes": suffixes,
                "any_port_suffixes": any_port_suffixes,
                "port_suffixes": port_suffixes,
            }),
        );
        out.insert(
            "files".into(),
            json!({"protect": self.files.protect, "deny_read": self.files.deny_read}),
        );
        out.insert(
            "git".into(),
            json!({
                "protected_branches": self.git.protected_branches,
                "allow_force_push": self.git.allow_force_push,
            }),
        );
        out.insert(
            "tools".into(),
            json!({"deny": self.tools.deny, "deny_arguments": self.tools.deny_arguments}),
        );
        out.insert(
            "secrets".into(),
            json!({
                "channels": {
                    "egress": s.egress, "tool_output": s.tool_output,
                    "file_write": s.file_write, "git_push": s.git_push,
                },
                "rules": s.rules,
                "destinations": destinations,
            }),
        );
        for (k, v) in &self.data {
            if out.contains_key(k) {
                return Err(ConfigError::DataCollision(k.clone()));
            }
            out.insert(k.clone(), v.clone());
        }
        Ok(Value::Object(out))
    }
}

/// Check a pattern with the same regex dialect Rego's `regex.match` uses (regorus uses `regex`).
fn regex_syntax_check(pattern: &str) -> Result<(), String> {
    let mut engine = regorus::Engine::new();
    engine.set_strict_builtin_errors(true);
    let query = format!(
        "regex.is_valid({})",
        serde_json::to_string(pattern).map_err(|e| e.to_string())?
    );
    match engine.eval_bool_query(query, false) {
        Ok(true) => Ok(()),
        Ok(false) => Err("not a valid regular expression".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(allow: &[&str]) -> PolicyConfig {
        PolicyConfig {
            network: NetworkConfig {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn host_patterns_become_tables() {
        let data = net(&[
            "GitHub.com",
            "*.githubusercontent.com",
            "pypi.org:443",
            "pypi.org:8443",
        ])
        .to_data()
        .unwrap();
        assert_eq!(data["network"]["hosts"]["github.com"], json!([]));
        assert_eq!(data["network"]["hosts"]["pypi.org"], json!([443, 8443]));
        assert_eq!(
            data["network"]["suffixes"],
            json!([{"suffix": ".githubusercontent.com", "ports": []}])
        );
        assert_eq!(
            data["network"]["any_port_suffixes"],
            json!([".githubusercontent.com"])
        );
        assert_eq!(data["network"]["port_suffixes"], json!([]));
    }

    #[test]
    fn any_port_wins_over_specific_ports() {
        let data = net(&["a.com:443", "a.com"]).to_data().unwrap();
        assert_eq!(data["network"]["hosts"]["a.com"], json!([]));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_pattern() {
        for bad in [
            "*",
            "*.com",
            "a.*.com",
            "a.com:0",
            "a.com:http",
            "",
            "a..b",
            "a b.com",
        ] {
            let err = net(&[bad]).to_data().unwrap_err();
            assert!(
                err.to_string().contains("invalid host pattern"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn presets_expand_and_unknown_presets_fail() {
        let mut cfg = PolicyConfig::default();
        cfg.network.presets = vec!["github".into()];
        let data = cfg.to_data().unwrap();
        assert_eq!(data["network"]["hosts"]["github.com"], json!([443]));
        cfg.network.presets = vec!["nope".into()];
        assert!(matches!(cfg.to_data(), Err(ConfigError::UnknownPreset(_))));
    }

    #[test]
    fn address_ranges_are_validated_and_truncated() {
        let mut cfg = PolicyConfig::default();
        cfg.network.allow_addresses = vec!["127.0.0.1/8".into(), "::1".into()];
        let data = cfg.to_data().unwrap();
        assert_eq!(
            data["network"]["allow_addresses"],
            json!(["127.0.0.0/8", "::1/128"])
        );
        cfg.network.allow_addresses = vec!["localhost".into()];
        assert!(cfg.to_data().is_err());
    }

    #[test]
    fn secrets_actions_and_tool_patterns_are_validated() {
        let mut cfg = PolicyConfig::default();
        cfg.secrets.egress = "ignore".into();
        assert!(cfg.to_data().is_err());
        let mut cfg = PolicyConfig::default();
        cfg.tools.deny_arguments = vec![ArgumentRule {
            tool: "exec".into(),
            argument: "command".into(),
            pattern: "(".into(),
        }];
        assert!(cfg.to_data().is_err());
    }

    #[test]
    fn policy_data_cannot_shadow_sections() {
        let mut cfg = PolicyConfig::default();
        cfg.data.insert("network".into(), json!({}));
        assert!(matches!(cfg.to_data(), Err(ConfigError::DataCollision(_))));
        cfg.data = Map::from_iter([("team".to_owned(), json!("infra"))]);
        assert_eq!(cfg.to_data().unwrap()["team"], json!("infra"));
    }
}
