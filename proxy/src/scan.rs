//! Secret scanning of what a request carries: the request target, every header, and the body
//! through its Content-Encoding and the scanner's decoders (base64, URL and JSON escaping,
//! quoted-printable, nested compression), with the scanner's bounded expansion.

use cordon_secrets::{ContentEncoding, DecodeLimits, Scanner};
use http::HeaderMap;

/// A finding, as policy and the audit log may see it: never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The scanner rule.
    pub rule: String,
    /// The keyed fingerprint.
    pub fingerprint: String,
    /// Where: `target`, `header:<name>`, `body`.
    pub location: String,
    /// Shannon entropy of the match.
    pub entropy: f64,
}

/// Why a body could not be scanned (and so must not leave).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unscannable {
    /// A Content-Encoding the proxy does not decode (or several stacked).
    #[error("the request body's content-encoding {0:?} cannot be scanned")]
    Encoding(String),
    /// Corrupt, or expanding past the scanner's limits.
    #[error("the request body cannot be decoded for scanning: {0}")]
    Decode(String),
}

fn found(
    findings: Vec<cordon_secrets::Finding>,
    location: &str,
) -> impl Iterator<Item = Found> + '_ {
    findings.into_iter().map(move |f| Found {
        rule: f.rule,
        fingerprint: f.fingerprint,
        location: location.to_owned(),
        entropy: f.entropy,
    })
}

/// Scans the request target and headers. A header that cannot be decoded is scanned as is.
pub fn scan_head(scanner: &Scanner, target: &str, headers: &HeaderMap) -> Vec<Found> {
    let limits = DecodeLimits::default();
    let mut out = Vec::new();
    let hits = scanner
        .scan_decoded(target.as_bytes(), limits)
        .unwrap_or_else(|_| scanner.scan(target.as_bytes()));
    out.extend(found(hits, "target"));
    for (name, value) in headers {
        // "name: value" so that rules keyed on the header name (authorization, x-api-key) see it.
        let mut line = name.as_str().as_bytes().to_vec();
        line.extend_from_slice(b": ");
        line.extend_from_slice(value.as_bytes());
        let hits = scanner
            .scan_decoded(&line, limits)
            .unwrap_or_else(|_| scanner.scan(&line));
        let location = format!("header:{}", name.as_str());
        out.extend(found(hits, &location));
    }
    out
}

/// The body's Content-Encoding, when the proxy can decode it.
pub fn encoding(headers: &HeaderMap) -> Result<ContentEncoding, Unscannable> {
    let values: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let joined = values.join(", ");
    let codings: Vec<&str> = joined
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != "identity")
        .collect();
    match codings.as_slice() {
        [] => Ok(ContentEncoding::Identity),
        ["gzip"] | ["x-gzip"] => Ok(ContentEncoding::Gzip),
        ["deflate"] => Ok(ContentEncoding::Deflate),
        ["br"] => Ok(ContentEncoding::Brotli),
        _ => Err(Unscannable::Encoding(joined)),
    }
}

/// Scans a whole request body.
pub fn scan_body(
    scanner: &Scanner,
    body: &[u8],
    encoding: ContentEncoding,
) -> Result<Vec<Found>, Unscannable> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let hits = scanner
        .scan_encoded(body, encoding, DecodeLimits::default())
        .map_err(|e| Unscannable::Decode(e.to_string()))?;
    Ok(found(hits, "body").collect())
}
