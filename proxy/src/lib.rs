//! cordon's egress proxy. Everything leaving a sandbox passes it: the sandbox's bridge connects
//! to its unix socket, and nothing else inside the sandbox can reach a network.
//!
//! What it does:
//! - HTTP/1.1 forward proxying of absolute-form `http://` requests and CONNECT tunnels, on a
//!   unix socket and optionally a loopback TCP listener (hyper 1 on tokio); WebSocket upgrades
//!   through both; HTTP/2 to TLS origins that offer it.
//! - The `network` policy at every step it can see: the name before it is resolved (a denied
//!   name is never looked up), the name with every address it resolved to, and per request the
//!   method, path and headers. The proxy resolves names itself and dials only the addresses it
//!   checked, never its own listeners. Destinations are normalised first (IDN, case, trailing
//!   dots, and every IPv4 spelling a resolver accepts).
//! - Optional TLS interception from a local CA (Host, SNI and CONNECT authority must agree),
//!   upstream certificates verified.
//! - Secret scanning of requests (target, headers, body through its Content-Encoding and the
//!   scanner's decoders) before any byte goes upstream; the `secrets` policy must explicitly
//!   allow a finding, else the request is blocked. A body that is too large or cannot be
//!   decoded is blocked. Token placeholders are swapped for configured credentials only on the
//!   credential's hosts. Git pushes go to the `git` policy.
//! - Report mode per policy area; one audit record per refused request, per forwarded request
//!   and per tunnel (a record that cannot be written stops the request); Prometheus metrics.

mod config;
mod gate;
pub mod host;
mod idle;
pub mod metrics;
pub mod pack;
mod resolve;
mod scan;
mod server;
mod splice;
pub mod tls;
pub mod token;
mod upstream;
mod zerocopy;

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
