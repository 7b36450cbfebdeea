//! cordon's egress proxy. Everything leaving a sandbox passes it: the sandbox's bridge connects
//! to its unix socket, and nothing else inside the sandbox can reach a network.
//!
//! What this crate does today:
//! - HTTP/1.1 forward proxying of absolute-form `http://` requests and CONNECT tunnels, on a
//!   unix socket and optionally a loopback TCP listener (hyper 1 on tokio).
//! - The `network` policy at every step it can see: the name before it is resolved (a denied
//!   name is never looked up), the name with every address it resolved to, and for plain HTTP
//!   the method, path and headers. The proxy resolves names itself and dials only the addresses
//!   it checked, never its own listeners. Destinations are normalised first (IDN, case, trailing
//!   dots, and every IPv4 spelling a resolver accepts).
//! - Secret scanning of plain-HTTP requests (target, headers, body through its
//!   Content-Encoding and the scanner's decoders) before any byte goes upstream; the `secrets`
//!   policy must explicitly allow a finding, else the request is blocked. A body that is too
//!   large or cannot be decoded is blocked.
//! - One audit record per refused request, per forwarded request and per tunnel; a record that
//!   cannot be written stops the request.
//!
//! Not yet: TLS interception (so HTTPS bodies are only seen as tunnels), token swap, the git
//! policy on pushes, report mode, metrics, WebSocket upgrades through plain-HTTP forwarding.

mod config;
mod gate;
pub mod host;
mod idle;
pub mod metrics;
pub mod pack;
mod resolve;
mod scan;
mod server;
pub mod tls;
pub mod token;

pub use config::ProxyConfig;
pub use gate::Gate;
pub use resolve::Resolver;
pub use scan::{Found, Unscannable};
pub use server::Proxy;

/// Why a proxy could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// An invalid setting.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
}
