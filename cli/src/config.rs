//! cordon.toml: one file, every key optional, each documented in `cordon.example.toml`.
//!
//! Found by `--config`, then `CORDON_CONFIG`, then `./cordon.toml`; absent means defaults.
//! Unknown keys are errors: a misspelt `[network] alow` must not silently mean "no egress".

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cordon_audit::{AuditOptions, Durability};
use cordon_policy::config::{FilesConfig, GitConfig, NetworkConfig, SecretsConfig, ToolsConfig};
use cordon_policy::{LoadOptions, PolicyConfig, PolicyLocation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub policy: PolicySection,
    pub audit: AuditSection,
    pub network: NetworkConfig,
    pub files: FilesConfig,
    pub git: GitConfig,
    pub tools: ToolsConfig,
    pub secrets: SecretsConfig,
    pub scan: ScanSection,
    pub sandbox: SandboxSection,
    pub proxy: ProxySection,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[policy]`
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    /// A directory of .rego and data files, a .wasm module or an opa bundle. Default: the
    /// policies built into cordon.
    pub dir: Option<PathBuf>,
    /// Wall-clock limit of one evaluation, in milliseconds.
    pub eval_timeout_ms: u64,
    /// Refuse a policy set whose test_* rules fail.
    pub require_tests: bool,
    /// Free-form data for custom Rego, under data.cordon.config.
    pub data: Map<String, Value>,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            dir: None,
            eval_timeout_ms: 100,
            require_tests: true,
            data: Map::new(),
        }
    }
}

/// `[scan]`: `cordon scan`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSection {
    /// A gitleaks-format rule file used instead of the built-in rules.
    pub rules: Option<PathBuf>,
    /// Files larger than this (MiB) are skipped.
    pub max_file_mib: u64,
    /// Key for secret fingerprints. Default: a per-user key created on first use.
    pub fingerprint_key_file: Option<PathBuf>,
    /// Environment variables whose values are looked for verbatim and encoded.
    pub exact_env: Vec<String>,
}

impl Default for ScanSection {
    fn default() -> Self {
        ScanSection {
            rules: None,
            max_file_mib: 10,
            fingerprint_key_file: None,
            exact_env: Vec::new(),
        }
    }
}

/// `[sandbox]`: `cordon run` and every tool command.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    /// The workspace mounted read-write at /workspace. Default: the current directory.
    pub workspace: Option<PathBuf>,
    /// The egress proxy's unix socket; without one the sandbox has no network at all.
    pub proxy_socket: Option<PathBuf>,
    /// The loopback port inside the sandbox that leads to the proxy.
    pub bridge_port: u16,
    /// CA bundle for TLS interception, named in SSL_CERT_FILE and friends inside.
    pub ca_file: Option<PathBuf>,
    /// Host paths shown read-only at the same path (toolchains such as ~/.rustup).
    pub read_only_paths: Vec<PathBuf>,
    /// Host variables passed through by name.
    pub pass_env: Vec<String>,
    /// Variables set for every command.
    pub env: std::collections::BTreeMap<String, String>,
    pub timeout_secs: u64,
    pub output_kib: u64,
    pub memory_mib: u64,
    pub pids: u64,
    pub cpu_secs: u64,
    pub file_size_mib: u64,
    pub tmp_mib: u64,
    pub open_files: u64,
    /// The lowest landlock ABI accepted without a downgrade.
    pub min_landlock_abi: u8,
    /// Features the operator accepts running without: "landlock", "protected-creation".
    pub allow_weaker: Vec<String>,
}

impl Default for SandboxSection {
    fn default() -> Self {
        let d = cordon_sandbox::SandboxConfig::new(".");
        SandboxSection {
            workspace: None,
            proxy_socket: None,
            bridge_port: d.bridge_port,
            ca_file: None,
            read_only_paths: Vec::new(),
            pass_env: d.pass_env,
            env: std::collections::BTreeMap::new(),
            timeout_secs: d.limits.timeout.as_secs(),
            output_kib: d.limits.output_bytes / 1024,
            memory_mib: d.limits.memory_bytes >> 20,
            pids: d.limits.pids,
            cpu_secs: d.limits.cpu_seconds,
            file_size_mib: d.limits.file_size_bytes >> 20,
            tmp_mib: d.limits.tmp_bytes >> 20,
            open_files: d.limits.open_files,
            min_landlock_abi: d.min_landlock_abi,
            allow_weaker: Vec::new(),
        }
    }
}

impl SandboxSection {
    /// The library configuration, with `protected` from the files policy.
    pub fn sandbox_config(
        &self,
        workspace: PathBuf,
        protected: Vec<String>,
        allow_weaker: &[String],
    ) -> Result<cordon_sandbox::SandboxConfig> {
        let mut c = cordon_sandbox::SandboxConfig::new(workspace);
        c.proxy_socket = self.proxy_socket.clone();
        c.bridge_port = self.bridge_port;
        c.ca_file = self.ca_file.clone();
        c.read_only_paths = self.read_only_paths.clone();
        c.pass_env = self.pass_env.clone();
        c.env = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        c.protected = protected;
        c.min_landlock_abi = self.min_landlock_abi;
        let l = &mut c.limits;
        l.timeout = Duration::from_secs(self.timeout_secs.max(1));
        l.output_bytes = self.output_kib.saturating_mul(1024);
        l.memory_bytes = self.memory_mib.saturating_mul(1 << 20);
        l.pids = self.pids;
        l.cpu_seconds = self.cpu_secs;
        l.file_size_bytes = self.file_size_mib.saturating_mul(1 << 20);
        l.tmp_bytes = self.tmp_mib.saturating_mul(1 << 20);
        l.open_files = self.open_files;
        for feature in self.allow_weaker.iter().chain(allow_weaker) {
            match feature.as_str() {
                "landlock" => c.downgrades.landlock = true,
                "protected-creation" => c.downgrades.protected_creation = true,
                other => bail!(
                    "unknown weaker level {other:?} (expected \"landlock\" or \"protected-creation\")"
                ),
            }
        }
        Ok(c)
    }
}

/// `[proxy]`: `cordon proxy`, and the proxy `cordon run` embeds.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// The unix socket sandboxes connect to. Default: proxy.sock in cordon's state directory.
    pub socket: Option<PathBuf>,
    /// An optional TCP listener; loopback addresses only.
    pub listen: Option<std::net::SocketAddr>,
    /// Serve Prometheus metrics (`GET /metrics`) here; loopback addresses only.
    pub metrics: Option<std::net::SocketAddr>,
    /// Names pinned to addresses, like curl's --resolve; policy still decides on them.
    pub hosts: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Request bodies larger than this (KiB) cannot be scanned and are refused.
    pub max_scan_kib: u64,
    /// CONNECT tunnels open at once.
    pub max_tunnels: usize,
    pub header_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub tunnel_timeout_secs: u64,
    /// A tunnel that carries nothing this long is closed.
    pub idle_timeout_secs: u64,
    /// Decrypt HTTPS with cordon's CA so requests inside are scanned and decided.
    pub intercept: bool,
    /// Where the interception CA lives. Default: ca/ in cordon's state directory.
    pub ca_dir: Option<PathBuf>,
    /// Trust the system's roots for upstream certificates.
    pub system_roots: bool,
    /// Extra PEM bundles trusted for upstream certificates.
    pub upstream_roots: Vec<PathBuf>,
    /// Policy areas in report mode ("network", "secrets"): a deny is recorded as would_deny and
    /// the request goes on. For rolling out a new policy; empty in production.
    pub report: Vec<String>,
    /// Credentials kept out of the sandbox: it sees a placeholder, the proxy swaps the real
    /// value in for the listed hosts only.
    pub tokens: Vec<TokenSection>,
}

/// `[[proxy.tokens]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// The variable the sandbox sees (e.g. GITHUB_TOKEN).
    pub name: String,
    /// The host variable holding the real value (default: the same name).
    pub from_env: Option<String>,
    /// Hosts the real value may go to: "github.com", "*.github.com".
    pub hosts: Vec<String>,
}

impl Default for ProxySection {
    fn default() -> Self {
        let d = cordon_proxy::ProxyConfig::default();
        ProxySection {
            socket: None,
            listen: None,
            metrics: None,
            hosts: std::collections::BTreeMap::new(),
            max_scan_kib: (d.max_scan_bytes / 1024) as u64,
            max_tunnels: d.max_tunnels,
            header_timeout_secs: d.header_timeout.as_secs(),
            connect_timeout_secs: d.connect_timeout.as_secs(),
            tunnel_timeout_secs: d.tunnel_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            intercept: false,
            ca_dir: None,
            system_roots: true,
            upstream_roots: Vec::new(),
            report: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

impl ProxySection {
    /// The areas in report mode; a name that is not an area is an error.
    pub fn report_areas(&self) -> Result<Vec<cordon_policy::Area>> {
        self.report
            .iter()
            .map(|a| {
                a.parse::<cordon_policy::Area>()
                    .with_context(|| format!("[proxy] report: {a:?} is not a policy area"))
            })
            .collect()
    }

    /// The library configuration.
    pub fn proxy_config(
        &self,
        sandbox: Option<String>,
        state_dir: Option<PathBuf>,
    ) -> Result<cordon_proxy::ProxyConfig> {
        if let Some(addr) = self.listen
            && !addr.ip().is_loopback()
        {
            bail!(
                "[proxy] listen = {addr}: only loopback addresses are allowed; sandboxes reach \
                 the proxy through its unix socket"
            );
        }
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Ok(cordon_proxy::ProxyConfig {
            hosts: self
                .hosts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            listen: self.listen.into_iter().collect(),
            max_scan_bytes: usize::try_from(self.max_scan_kib.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            max_tunnels: self.max_tunnels.max(1),
            header_timeout: secs(self.header_timeout_secs),
            connect_timeout: secs(self.connect_timeout_secs),
            tunnel_timeout: secs(self.tunnel_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            sandbox,
            intercept: self.intercept,
            ca_dir: self
                .ca_dir
                .clone()
                .or_else(|| state_dir.map(|d| d.join("ca"))),
            system_roots: self.system_roots,
            upstream_roots: self.upstream_roots.clone(),
            tokens: self.tokens()?,
            ..cordon_proxy::ProxyConfig::default()
        })
    }

    /// The swapped credentials, with their real values read from the host's environment.
    fn tokens(&self) -> Result<Vec<cordon_proxy::token::Token>> {
        self.tokens
            .iter()
            .map(|t| {
                let var = t.from_env.as_deref().unwrap_or(&t.name);
                let value = std::env::var(var).with_context(|| {
                    format!(
                        "[[proxy.tokens]] {}: the host variable {var} is not set",
                        t.name
                    )
                })?;
                if t.hosts.is_empty() {
                    bail!(
                        "[[proxy.tokens]] {}: hosts is empty, so it could go nowhere",
                        t.name
                    );
                }
                Ok(cordon_proxy::token::Token::new(&t.name, &value, &t.hosts))
            })
            .collect()
    }
}

/// `[audit]`
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// The log file. Default: $XDG_STATE_HOME/cordon/audit.jsonl (~/.local/state/cordon/...).
    pub path: Option<PathBuf>,
    /// Rotate the active file at this size, in MiB; 0 never rotates.
    pub rotate_mib: u64,
    /// "fsync" (durable across a machine crash) or "write" (across a cordon crash only).
    pub durability: String,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            path: None,
            rotate_mib: 64,
            durability: "fsync".into(),
        }
    }
}

impl Config {
    /// Load from the first of `flag`, `CORDON_CONFIG`, `./cordon.toml` that is given or exists.
    pub fn load(flag: Option<&Path>) -> Result<Self> {
        let env = std::env::var_os("CORDON_CONFIG").map(PathBuf::from);
        let path = match (flag, env) {
            (Some(p), _) => Some(p.to_owned()),
            (None, Some(p)) => Some(p),
            (None, None) => Some(PathBuf::from("cordon.toml")).filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        config.source = Some(path);
        Ok(config)
    }

    /// What policies see as data.cordon.config.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            network: self.network.clone(),
            files: self.files.clone(),
            git: self.git.clone(),
            tools: self.tools.clone(),
            secrets: self.secrets.clone(),
            data: self.policy.data.clone(),
        }
    }

    /// Where policies come from: `override_dir`, then `CORDON_POLICY_DIR`, then `[policy] dir`,
    /// then the built-in defaults.
    pub fn policy_location(&self, override_dir: Option<&Path>) -> PolicyLocation {
        override_dir
            .map(Path::to_owned)
            .or_else(|| std::env::var_os("CORDON_POLICY_DIR").map(PathBuf::from))
            .or_else(|| self.policy.dir.clone())
            .map_or(PolicyLocation::Embedded, PolicyLocation::Path)
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            eval_timeout: Duration::from_millis(self.policy.eval_timeout_ms.max(1)),
            require_tests_pass: self.policy.require_tests,
            ..LoadOptions::default()
        }
    }

    /// The audit log: `flag`, then `CORDON_AUDIT_LOG`, then `[audit] path`, then the per-user
    /// default.
    pub fn audit_path(&self, flag: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = flag {
            return Ok(p.to_owned());
        }
        if let Some(p) = std::env::var_os("CORDON_AUDIT_LOG") {
            return Ok(PathBuf::from(p));
        }
        if let Some(p) = &self.audit.path {
            return Ok(p.clone());
        }
        Ok(self
            .state_dir()
            .context("no audit log path: set [audit] path, CORDON_AUDIT_LOG or --audit-log")?
            .join("audit.jsonl"))
    }

    /// cordon's per-user state directory: $XDG_STATE_HOME/cordon, else ~/.local/state/cordon.
    pub fn state_dir(&self) -> Result<PathBuf> {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("cordon"))
            .context("HOME is not set, so there is no per-user state directory")
    }

    pub fn audit_options(&self) -> Result<AuditOptions> {
        let durability = match self.audit.durability.as_str() {
            "fsync" => Durability::Fsync,
            "write" => Durability::Write,
            other => {
                bail!("invalid [audit] durability {other:?} (expected \"fsync\" or \"write\")")
            }
        };
        Ok(AuditOptions {
            rotate_bytes: (self.audit.rotate_mib > 0).then(|| self.audit.rotate_mib * 1024 * 1024),
            durability,
            ..AuditOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.policy.eval_timeout_ms, 100);
        assert_eq!(c.git.protected_branches, ["main", "master"]);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("[network]\nalow = [\"x\"]\n").unwrap_err();
        assert!(err.to_string().contains("alow"), "{err}");
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../../cordon.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        c.policy_config().to_data().unwrap();
        c.audit_options().unwrap();
    }
}
