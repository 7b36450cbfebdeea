//! `cordon proxy`: the egress proxy on its own, and the embedded one `cordon run` starts for
//! its command when no proxy socket is configured.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use cordon_audit::AuditLog;
use cordon_policy::Policy;
use cordon_proxy::{Gate, Proxy};

use super::Ctx;
use crate::config::Config;
use crate::output;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The unix socket to listen on. Default: [proxy] socket, else proxy.sock in cordon's state
    /// directory.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Also listen on this loopback TCP address (e.g. 127.0.0.1:3128).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// Builds the proxy from the configuration: policies in force, the secret rules, the audit log.
fn build(
    config: &Config,
    audit: Arc<AuditLog>,
    sandbox: Option<String>,
    listen: Option<std::net::SocketAddr>,
) -> Result<Proxy> {
    let mut section_config = config
        .proxy
        .proxy_config(sandbox, config.state_dir().ok())?;
    if let Some(l) = listen {
        if !l.ip().is_loopback() {
            bail!("--listen {l}: only loopback addresses are allowed");
        }
        section_config.listen = vec![l];
    }
    let location = config.policy_location(None);
    let set = location
        .load(&config.policy_config(), &config.load_options())
        .with_context(|| format!("cannot load policies from {location}"))?;
    let policy = Arc::new(Policy::new(set));
    let scanner = cordon_secrets::Scanner::with_defaults().context("loading the secret rules")?;
    let report = config.proxy.report_areas()?;
    if !report.is_empty() {
        output::warn(&format!(
            "report mode for {:?}: denies there are only recorded (would_deny)",
            config.proxy.report
        ));
    }
    let gate = Gate::new(policy, Some(audit), None).report(&report);
    Ok(Proxy::new(section_config, gate, scanner)?)
}

/// Binds a unix socket, replacing a stale one (a socket file nobody listens on).
fn bind_unix(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use by another proxy", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What a standalone proxy tells the sandboxes that use it: the placeholder of each swapped
/// credential, and the interception CA to trust. Beside the socket, owner-only: a placeholder
/// makes the proxy swap in the real credential (on that credential's hosts).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Published {
    /// (name, placeholder) of each `[[proxy.tokens]]`.
    pub placeholders: Vec<(String, String)>,
    /// The interception CA certificate, when interception is on.
    pub ca_cert: Option<PathBuf>,
}

/// The file beside `socket` that holds what the proxy publishes.
pub fn published_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn publish(socket: &Path, proxy: &cordon_proxy::Proxy) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = published_path(socket);
    let _ = std::fs::remove_file(&path);
    let published = Published {
        placeholders: proxy.placeholders(),
        ca_cert: proxy.ca_cert(),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(serde_json::to_string(&published)?.as_bytes())?;
    Ok(path)
}

/// What the proxy on `socket` published, if it is a standalone `cordon proxy`.
pub fn published(socket: &Path) -> Result<Option<Published>> {
    let path = published_path(socket);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not what cordon proxy writes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cordon-proxy")
        .enable_all()
        .build()
        .context("cannot start the proxy runtime")
}

impl ProxyArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let config = ctx.config()?;
        let audit = Arc::new(ctx.audit_log(&config)?);
        let socket = match self.socket.clone().or_else(|| config.proxy.socket.clone()) {
            Some(s) => s,
            None => config.state_dir()?.join("proxy.sock"),
        };
        let listen = self.listen.or(config.proxy.listen);
        let metrics_addr = config.proxy.metrics;
        if let Some(m) = metrics_addr
            && !m.ip().is_loopback()
        {
            bail!("[proxy] metrics = {m}: only loopback addresses are allowed");
        }
        let proxy = build(&config, audit, None, listen)?;
        let unix = bind_unix(&socket)?;
        let sidecar = publish(&socket, &proxy)?;
        let rt = runtime()?;
        rt.block_on(async move {
            let unix = tokio::net::UnixListener::from_std(unix)?;
            let tcp = match listen {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr}"))?,
                ),
                None => None,
            };
            output::info(&format!("cordon proxy: listening on {}", socket.display()));
            if let Some(t) = &tcp {
                output::info(&format!("cordon proxy: listening on {}", t.local_addr()?));
            }
            let metrics = match metrics_addr {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr} for metrics"))?,
                ),
                None => None,
            };
            if let Some(m) = &metrics {
                output::info(&format!(
                    "cordon proxy: metrics on http://{}/metrics",
                    m.local_addr()?
                ));
            }
            let p2 = proxy.clone();
            let p3 = proxy.clone();
            let serve_metrics = async move {
                match metrics {
                    Some(m) => p3.serve_metrics(m).await,
                    None => std::future::pending().await,
                }
            };
            let serve_unix = async move { proxy.serve_unix(unix).await };
            let serve_tcp = async move {
                match tcp {
                    Some(t) => p2.serve_tcp(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = serve_unix => r.context("the unix listener failed")?,
                r = serve_tcp => r.context("the TCP listener failed")?,
                r = serve_metrics => r.context("the metrics listener failed")?,
                _ = shutdown() => output::info("cordon proxy: stopping"),
            }
            let _ = std::fs::remove_file(&socket);
            let _ = std::fs::remove_file(&sidecar);
            Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
        })
    }
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A proxy serving one `cordon run` on a private unix socket; stops when dropped.
pub struct Embedded {
    pub socket: PathBuf,
    /// The interception CA, when interception is on.
    pub ca_cert: Option<PathBuf>,
    /// (name, placeholder) of each swapped credential, for the sandbox's environment.
    pub placeholders: Vec<(String, String)>,
    _dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Embedded {
    pub fn start(
        config: &Config,
        audit: Arc<AuditLog>,
        sandbox: Option<String>,
    ) -> Result<Embedded> {
        let proxy = build(config, audit, sandbox, None)?;
        let ca_cert = proxy.ca_cert();
        let placeholders = proxy.placeholders();
        let dir = std::env::temp_dir().join(format!("cordon-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let socket = dir.join("proxy.sock");
        let unix = bind_unix(&socket)?;
        let rt = runtime()?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::UnixListener::from_std(unix)?
        };
        rt.spawn(async move { proxy.serve_unix(listener).await });
        Ok(Embedded {
            socket,
            ca_cert,
            placeholders,
            _dir: dir,
            runtime: Some(rt),
        })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}
