//! Destination names as clients spell them, turned into the one form policy decides on: ASCII
//! lower case, no trailing dot, no brackets, IDN as punycode, and every IPv4 spelling that
//! resolvers accept (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) as the dotted quad it means.
//! A name a resolver would read as an address must be decided as that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A normalised destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name or canonical IP literal that policy sees.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address, when the host is a literal.
    pub ip: Option<IpAddr>,
}

/// Why a destination cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Empty, malformed, or with characters no host name has.
    #[error("invalid destination host {0:?}")]
    Host(String),
    /// Missing or not a number from 1 to 65535.
    #[error("invalid destination port in {0:?}")]
    Port(String),
}

impl Destination {
    /// `host:port` as it appears in audit records and CONNECT lines.
    pub fn authority(&self) -> String {
        match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Parses `host[:port]` (IPv6 in brackets); `default_port` applies when the port is absent.
pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Result<Destination, HostError> {
    let bad_host = || HostError::Host(clip(raw));
    if raw.is_empty()
        || raw.contains('@')
        || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad_host());
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad_host)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (inside, port)
    } else {
        match raw.rsplit_once(':') {
            // More than one colon without brackets is an IPv6 literal, which must be bracketed.
            Some((h, _)) if h.contains(':') => return Err(bad_host()),
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| HostError::Port(clip(raw)))?,
        None => default_port.ok_or_else(|| HostError::Port(clip(raw)))?,
    };
    let (host, ip) = normalise_host(host).ok_or_else(bad_host)?;
    Ok(Destination { host, port, ip })
}

/// The canonical form of a host, and its address when it is a literal.
pub fn normalise_host(raw: &str) -> Option<(String, Option<IpAddr>)> {
    let host = raw.strip_suffix('.').unwrap_or(raw);
    if host.is_empty() || host.ends_with('.') {
        return None;
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some((v6.to_string(), Some(IpAddr::V6(v6))));
    }
    if host.contains('%') {
        // Zone ids name host interfaces; nothing outside the proxy may choose one.
        return None;
    }
    if let Some(v4) = loose_ipv4(host) {
        return Some((v4.to_string(), Some(IpAddr::V4(v4))));
    }
    // UTS 46 processing: lower case, punycode for non-ASCII, and a refusal for what cannot be
    // a host name.
    let ascii = idna::domain_to_ascii_strict(host).ok()?;
    if ascii.is_empty() || ascii.len() > 253 {
        return None;
    }
    // Mapping can reveal an address: characters UTS 46 ignores (U+034F, soft hyphens) around
    // `0x7f.1`, or full-width digits. What it maps to is what a resolver would see.
    if let Some(v4) = loose_ipv4(&ascii) {
        return Some((v4.to_string(), Some(IpAddr::V4(v4))));
    }
    // A name whose last label is all digits would be read as an address by some resolvers.
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    Some((ascii, None))
}

/// inet_aton's IPv4 syntax: one to four parts, each decimal, octal (leading 0) or hex (0x),
/// the last part filling the remaining bytes.
pub fn loose_ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        values.push(parse_part(p)?);
    }
    let (last, head) = values.split_last()?;
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 0xff {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 64 && *last >= (1u64 << room) {
        return None;
    }
    addr |= last;
    u32::try_from(addr).ok().map(Ipv4Addr::from)
}

fn parse_part(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (p.get(1..)?, 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // "0x" alone is 0 for inet_aton.
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipv4_spelling_is_the_address_it_means() {
        for spelling in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "127.0.1",
            "0x7F.0.0.0x1",
            "127.0.0.1.",
        ] {
            let d = parse_authority(&format!("{spelling}:80"), None).unwrap();
            assert_eq!(d.host, "127.0.0.1", "{spelling}");
            assert_eq!(d.ip, Some("127.0.0.1".parse().unwrap()));
        }
        assert_eq!(
            parse_authority("169.254.169.254:80", None).unwrap().host,
            "169.254.169.254"
        );
        assert_eq!(
            parse_authority("0251.0376.0251.0376:80", None)
                .unwrap()
                .host,
            "169.254.169.254"
        );
        assert_eq!(
            parse_authority("2852039166:80", None).unwrap().host,
            "169.254.169.254"
        );
    }

    #[test]
    fn an_address_hidden_by_idn_mapping_is_the_address() {
        // Found by the `authority` fuzz target: U+034F, which UTS 46 removes, before a hex
        // IPv4 spelling; the name "0x15575" it maps to is what a resolver reads as 0.1.85.117.
        let d = parse_authority("\u{34f}0x15575:80", None).unwrap();
        assert_eq!(d.host, "0.1.85.117");
        assert_eq!(d.ip, Some("0.1.85.117".parse().unwrap()));
        let d = parse_authority("\u{ad}0x7f.1:80", None).unwrap();
        assert_eq!(d.ip, Some("127.0.0.1".parse().unwrap()));
        // Full-width digits map to ASCII ones.
        let d = parse_authority("\u{ff11}\u{ff12}\u{ff17}.0.0.1:80", None).unwrap();
        assert_eq!(d.ip, Some("127.0.0.1".parse().unwrap()));
        // And what was accepted parses to itself.
        assert_eq!(parse_authority(&d.authority(), None).unwrap(), d);
    }

    #[test]
    fn ipv6_literals_are_canonical() {
        let d = parse_authority("[::FFFF:7F00:1]:443", None).unwrap();
        assert_eq!(d.host, "::ffff:127.0.0.1");
        assert!(d.ip.is_some());
        assert_eq!(
            parse_authority("[0:0:0:0:0:0:0:1]:1", None).unwrap().host,
            "::1"
        );
        assert!(parse_authority("::1:80", None).is_err());
        assert!(parse_authority("[fe80::1%eth0]:80", None).is_err());
    }

    #[test]
    fn names_are_lower_case_ascii_without_trailing_dot() {
        assert_eq!(
            parse_authority("GitHub.COM.:443", None).unwrap().host,
            "github.com"
        );
        assert_eq!(
            parse_authority("bücher.example:443", None).unwrap().host,
            "xn--bcher-kva.example"
        );
        assert_eq!(parse_authority("example.com", Some(80)).unwrap().port, 80);
    }

    #[test]
    fn malformed_destinations_are_refused() {
        for bad in [
            "",
            ":80",
            "a b:80",
            "user@host:80",
            "host:0",
            "host:99999",
            "host:x",
            "host",
            "a..b:80",
            "1.2.3.4.5:80",
            "256.1.1.1.1:80",
            "example.123:80",
            "[::1:80",
            "host:80:90",
        ] {
            assert!(parse_authority(bad, None).is_err(), "{bad:?}");
        }
        assert!(parse_authority("999.1.1.1:80", None).is_err());
    }
}
