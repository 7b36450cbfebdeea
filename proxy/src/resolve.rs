//! Name resolution done by the proxy itself: the addresses policy checks are the addresses the
//! proxy dials. Overrides (`[proxy] hosts`) pin names to addresses, like curl's `--resolve`;
//! tests use them to point an allowed name at a loopback or metadata address.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use crate::host::normalise_host;

/// How long a lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The proxy's resolver.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl Resolver {
    /// A resolver that asks the system, except for the names in `overrides`.
    pub fn new(overrides: &[(String, Vec<IpAddr>)]) -> Result<Resolver, String> {
        let mut map = HashMap::new();
        for (name, ips) in overrides {
            let (host, ip) =
                normalise_host(name).ok_or_else(|| format!("invalid host {name:?}"))?;
            if ip.is_some() || ips.is_empty() {
                return Err(format!(
                    "hosts override {name:?} must map a name to addresses"
                ));
            }
            map.insert(host, ips.clone());
        }
        Ok(Resolver { overrides: map })
    }

    /// Every address `host` resolves to, in the resolver's order, without duplicates.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ips) = self.overrides.get(host) {
            return Ok(ips.clone());
        }
        let lookup = tokio::net::lookup_host((host, port));
        let addrs = tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "name lookup timed out"))??;
        let mut ips: Vec<IpAddr> = Vec::new();
        for a in addrs {
            if !ips.contains(&a.ip()) {
                ips.push(a.ip());
            }
        }
        if ips.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the name has no addresses",
            ));
        }
        Ok(ips)
    }
}
