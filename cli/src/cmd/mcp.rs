//! `cordon mcp`: the MCP server on stdio (the default) or streamable HTTP, over one or more
//! workspaces, each with its own sandbox, all behind one embedded egress proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use cordon_mcp::{CordonServer, Guard, Registry, Spawner, Workspace};
use cordon_policy::Policy;

use super::Ctx;
use crate::output;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// A workspace, as DIR or NAME=DIR; repeat for several (the first is the default).
    /// Default: the current directory, named "default".
    #[arg(long = "workspace", value_name = "[NAME=]DIR")]
    workspaces: Vec<String>,
    /// Serve streamable HTTP on this loopback address (e.g. 127.0.0.1:8787) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// The bearer token file for --http (created 0600 with a new token if missing).
    /// Default: mcp.token in cordon's state directory.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key). With TLS, --http may be a
    /// non-loopback address, and --allow-host names the host clients use.
    #[arg(long, value_name = "FILE", requires_all = ["http", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A Host header value accepted besides the loopback ones (`name` or `name:port`).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Serve HTTP without the bearer token: anyone who can reach the loopback port can call
    /// the tools. For protocol test suites that cannot send a token; logged and audited.
    #[arg(long, requires = "http")]
    insecure_no_token: bool,
    /// An Origin allowed to call the HTTP server (browsers send one); repeat for several.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Where `git_clone` makes new workspaces. Default: workspaces/ in cordon's state
    /// directory.
    #[arg(long, value_name = "DIR")]
    workspaces_dir: Option<PathBuf>,
    /// No network in the sandboxes, not even through the proxy.
    #[arg(long)]
    no_network: bool,
    /// Accept running without this sandbox feature ("landlock", "protected-creation").
    #[arg(long = "allow-weaker", value_name = "FEATURE")]
    allow_weaker: Vec<String>,
    /// Print client configurations once listening (`cordon up`).
    #[arg(skip)]
    print_configs: bool,
}

impl McpArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let config = ctx.config()?;
        let log = Arc::new(ctx.audit_log(&config)?);
        let location = config.policy_location(None);
        let set = location
            .load(&config.policy_config(), &config.load_options())
            .with_context(|| format!("cannot load policies from {location}"))?;
        let policy = Arc::new(Policy::new(set));
        let scanner =
            Arc::new(cordon_secrets::Scanner::with_defaults().context("loading the secret rules")?);
        let protected = super::run::protected_paths(&config)?;

        let mut named = Vec::new();
        if self.workspaces.is_empty() {
            named.push((
                "default".to_owned(),
                std::env::current_dir().context("cannot read the current directory")?,
            ));
        }
        for w in &self.workspaces {
            let (name, dir) = match w.split_once('=') {
                Some((n, d)) => (n.to_owned(), PathBuf::from(d)),
                None if named.is_empty() => ("default".to_owned(), PathBuf::from(w)),
                None => {
                    let dir = PathBuf::from(w);
                    let name = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format!("ws{}", named.len() + 1));
                    (name, dir)
                }
            };
            named.push((name, dir));
        }

        let proxy = if self.no_network {
            None
        } else {
            Some(super::proxy::Embedded::start(
                &config,
                Arc::clone(&log),
                Some("mcp".into()),
            )?)
        };
        // One shape for every workspace's sandbox, those git_clone makes included.
        let mut template = config.sandbox.sandbox_config(
            std::env::temp_dir(),
            protected.clone(),
            &self.allow_weaker,
        )?;
        match &proxy {
            None => template.proxy_socket = None,
            Some(p) => {
                template.proxy_socket = Some(p.socket.clone());
                if template.ca_file.is_none() {
                    template.ca_file = p.ca_cert.clone();
                }
                template.env.extend(p.placeholders.iter().cloned());
            }
        }
        let mut workspaces = Vec::new();
        for (name, dir) in named {
            let mut sc = template.clone();
            sc.workspace = dir.clone();
            sc.name = name.clone();
            let ws = Workspace::new(&name, sc)
                .with_context(|| format!("workspace {name} ({})", dir.display()))?;
            workspaces.push(ws);
        }
        let spawner = Spawner {
            template,
            dir: match &self.workspaces_dir {
                Some(d) => d.clone(),
                None => config.state_dir()?.join("workspaces"),
            },
        };
        let registry = Registry::new(workspaces, Some(spawner))?;
        let guard = Guard::new(policy, scanner, log, "mcp");
        let server = CordonServer::new(registry, guard.clone());

        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        match self.http {
            None => rt
                .block_on(cordon_mcp::serve_stdio(server))
                .context("serving MCP on stdio")?,
            Some(addr) => {
                let tls = match (&self.tls_cert, &self.tls_key) {
                    (Some(c), Some(k)) => Some(cordon_mcp::http::tls_config(c, k)?),
                    _ => None,
                };
                if !addr.ip().is_loopback() && tls.is_none() {
                    bail!(
                        "--http {addr}: without TLS only loopback addresses are served (give --tls-cert and --tls-key)"
                    );
                }
                if !addr.ip().is_loopback()
                    && (self.insecure_no_token || self.allow_hosts.is_empty())
                {
                    bail!(
                        "--http {addr}: a non-loopback listener needs the token and at least one --allow-host"
                    );
                }
                let token_file = match &self.token_file {
                    Some(f) => f.clone(),
                    None => config.state_dir()?.join("mcp.token"),
                };
                let token = if self.insecure_no_token {
                    output::warn(
                        "--insecure-no-token: the HTTP server accepts requests without a token; \
                         anyone who can reach the port can call the tools",
                    );
                    let event = cordon_audit::Event::new(cordon_audit::Kind::ToolCall, "http")
                        .target(addr.to_string())
                        .outcome("insecure")
                        .detail(
                            "reason",
                            serde_json::json!("started with --insecure-no-token"),
                        );
                    guard.record(event)?;
                    None
                } else {
                    Some(token(&token_file)?)
                };
                let listener = rt
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                let access = cordon_mcp::http::HttpAccess {
                    token,
                    hosts: [
                        format!("127.0.0.1:{}", local.port()),
                        format!("localhost:{}", local.port()),
                        format!("[::1]:{}", local.port()),
                    ]
                    .into_iter()
                    .chain(self.allow_hosts.iter().cloned())
                    .collect(),
                    // The server's own loopback origins, and those the operator names.
                    origins: [
                        format!("{scheme}://127.0.0.1:{}", local.port()),
                        format!("{scheme}://localhost:{}", local.port()),
                        format!("{scheme}://[::1]:{}", local.port()),
                    ]
                    .into_iter()
                    .chain(self.allow_origins.iter().cloned())
                    .collect(),
                };
                output::info(&format!(
                    "MCP on {scheme}://{local}/mcp (bearer token in {})",
                    if access.token.is_some() {
                        token_file.display().to_string()
                    } else {
                        "none: --insecure-no-token".to_owned()
                    }
                ));
                if self.print_configs {
                    let url = format!("{scheme}://{local}/mcp");
                    output::line(super::up::client_configs(&url, &token_file).trim_end());
                    output::flush();
                }
                rt.block_on(cordon_mcp::http::serve(
                    server, guard, listener, access, tls,
                ))
                .context("serving MCP over HTTP")?;
            }
        }
        drop(proxy);
        Ok(ExitCode::SUCCESS)
    }
}

/// The token in `path`, or a new one written there (0600) when the file does not exist.
fn token(path: &std::path::Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_owned()),
        Ok(_) => bail!(
            "{}: the token is shorter than 32 characters",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{token}")?;
    Ok(token)
}

impl McpArgs {
    /// `cordon up`'s arguments: HTTP on `addr` over `workspaces`, configurations printed.
    pub fn up(workspaces: Vec<String>, addr: SocketAddr, allow_weaker: Vec<String>) -> McpArgs {
        McpArgs {
            workspaces,
            http: Some(addr),
            token_file: None,
            tls_cert: None,
            tls_key: None,
            allow_hosts: Vec::new(),
            insecure_no_token: false,
            allow_origins: Vec::new(),
            workspaces_dir: None,
            no_network: false,
            allow_weaker,
            print_configs: true,
        }
    }
}
