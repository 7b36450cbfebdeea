//! The proxy's settings. Defaults are safe; every limit has one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How the proxy listens, resolves and bounds its work.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Names pinned to addresses (like curl's `--resolve`); checked by policy like any other.
    pub hosts: Vec<(String, Vec<IpAddr>)>,
    /// The proxy's own TCP listeners: a destination equal to one of them is refused.
    pub listen: Vec<SocketAddr>,
    /// Request line and headers, in bytes (larger requests get 431).
    pub max_header_bytes: usize,
    /// Request bodies larger than this cannot be scanned, so they are refused (413).
    pub max_scan_bytes: usize,
    /// Tunnels open at once; more get 503.
    pub max_tunnels: usize,
    /// Time for a client to send a request head.
    pub header_timeout: Duration,
    /// Time to connect to an upstream address.
    pub connect_timeout: Duration,
    /// The longest a tunnel may stay open.
    pub tunnel_timeout: Duration,
    /// The longest a tunnel may carry nothing before it is closed.
    pub idle_timeout: Duration,
    /// Names the sandbox in audit records.
    pub sandbox: Option<String>,
    /// Decrypt CONNECT tunnels with certificates from cordon's CA, so requests inside are
    /// scanned and decided like plain ones.
    pub intercept: bool,
    /// Where the interception CA lives (created on first start).
    pub ca_dir: Option<std::path::PathBuf>,
    /// Trust the system's roots for upstream certificates.
    pub system_roots: bool,
    /// Extra PEM bundles trusted for upstream certificates.
    pub upstream_roots: Vec<std::path::PathBuf>,
    /// Credentials swapped in for their placeholders (see `token`).
    pub tokens: Vec<crate::token::Token>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            hosts: Vec::new(),
            listen: Vec::new(),
            max_header_bytes: 64 * 1024,
            max_scan_bytes: 16 << 20,
            max_tunnels: 1024,
            header_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tunnel_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(300),
            sandbox: None,
            intercept: false,
            ca_dir: None,
            system_roots: true,
            upstream_roots: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

impl ProxyConfig {
    /// Whether dialing `addr` would reach this proxy.
    pub fn is_self(&self, addr: SocketAddr) -> bool {
        self.listen.iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip()
                    || (l.ip().is_unspecified()
                        && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
        })
    }
}
