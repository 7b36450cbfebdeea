//! Token swap: a credential (a deploy token, an API key) never enters the sandbox. The sandbox
//! gets a placeholder in its environment; the proxy puts the real value in place of the
//! placeholder only in requests to the hosts configured for that credential, and blocks (and
//! records) a placeholder sent anywhere else. The real value is never logged.

use base64::Engine;
use http::{HeaderValue, Uri};

/// One swapped credential.
#[derive(Clone)]
pub struct Token {
    /// The variable name the sandbox sees (`GITHUB_TOKEN`).
    pub name: String,
    value: String,
    /// What the sandbox holds instead: unguessable, and shaped like no secret rule.
    pub placeholder: String,
    /// Hosts the real value may go to: `github.com`, or `*.github.com` for subdomains.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A credential `name` with its real `value`, allowed to `hosts`.
    pub fn new(name: &str, value: &str, hosts: &[String]) -> Token {
        Token {
            name: name.to_owned(),
            value: value.to_owned(),
            placeholder: format!("cordon-placeholder-{}", uuid::Uuid::new_v4().simple()),
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether the real value may go to `host` (normalised).
    pub fn allows(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == p,
        })
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

fn replace(hay: &[u8], from: &str, to: &str) -> Vec<u8> {
    let finder = memchr::memmem::Finder::new(from.as_bytes());
    let mut out = Vec::with_capacity(hay.len());
    let mut at = 0;
    for i in finder.find_iter(hay) {
        out.extend_from_slice(hay.get(at..i).unwrap_or_default());
        out.extend_from_slice(to.as_bytes());
        at = i + from.len();
    }
    out.extend_from_slice(hay.get(at..).unwrap_or_default());
    out
}

/// The placeholder inside `Authorization: Basic base64(user:secret)`, as git sends tokens.
fn basic_decoded(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
}

/// Which tokens' placeholders a request carries (target, headers, Basic credentials, body).
pub fn found<'a>(
    tokens: &'a [Token],
    target: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Vec<&'a Token> {
    tokens
        .iter()
        .filter(|t| {
            contains(target.as_bytes(), &t.placeholder)
                || contains(body, &t.placeholder)
                || headers.values().any(|v| {
                    contains(v.as_bytes(), &t.placeholder)
                        || basic_decoded(v.as_bytes()).is_some_and(|d| contains(&d, &t.placeholder))
                })
        })
        .collect()
}

/// What the scanner should see: each placeholder replaced by a constant that no rule matches
/// (a placeholder is random, so entropy-gated rules would take it for a secret).
pub fn neutralised(
    tokens: &[&Token],
    target: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> (String, http::HeaderMap, Vec<u8>) {
    const NEUTRAL: &str = "cordon-placeholder";
    let mut target = target.to_owned();
    let mut headers = headers.clone();
    let mut body = body.to_vec();
    for t in tokens {
        target = target.replace(&t.placeholder, NEUTRAL);
        // Basic credentials whose password is a placeholder hold nothing but the credential
        // cordon manages: the scanner does not see them (a Basic header is a finding by itself).
        let names: Vec<http::HeaderName> = headers.keys().cloned().collect();
        for name in names {
            let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
            let mut kept = Vec::with_capacity(values.len());
            for value in values {
                let bytes = value.as_bytes();
                if basic_decoded(bytes).is_some_and(|d| contains(&d, &t.placeholder)) {
                    continue;
                }
                if contains(bytes, &t.placeholder) {
                    if let Ok(v) = HeaderValue::from_bytes(&replace(bytes, &t.placeholder, NEUTRAL))
                    {
                        kept.push(v);
                    }
                } else {
                    kept.push(value);
                }
            }
            headers.remove(&name);
            for v in kept {
                headers.append(name.clone(), v);
            }
        }
        body = replace(&body, &t.placeholder, NEUTRAL);
    }
    (target, headers, body)
}

/// Puts each token's real value in place of its placeholder. Returns the new body.
pub fn swap(
    tokens: &[&Token],
    parts: &mut http::request::Parts,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut body = body.to_vec();
    for t in tokens {
        if let Some(pq) = parts.uri.path_and_query().map(|p| p.as_str().to_owned())
            && pq.contains(&t.placeholder)
        {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(
                pq.replace(&t.placeholder, &t.value)
                    .parse()
                    .map_err(|_| format!("{} does not fit in a URI", t.name))?,
            );
            parts.uri = Uri::from_parts(uri).map_err(|e| e.to_string())?;
        }
        for value in parts.headers.values_mut() {
            let bytes = value.as_bytes();
            let new = if contains(bytes, &t.placeholder) {
                Some(replace(bytes, &t.placeholder, &t.value))
            } else if let Some(decoded) =
                basic_decoded(bytes).filter(|d| contains(d, &t.placeholder))
            {
                let swapped = replace(&decoded, &t.placeholder, &t.value);
                let encoded = base64::engine::general_purpose::STANDARD.encode(swapped);
                Some(format!("Basic {encoded}").into_bytes())
            } else {
                None
            };
            if let Some(new) = new {
                *value = HeaderValue::from_bytes(&new)
                    .map_err(|_| format!("{} does not fit in a header", t.name))?;
            }
        }
        if contains(&body, &t.placeholder) {
            body = replace(&body, &t.placeholder, &t.value);
        }
    }
    if parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        let t = Token::new(
            "T",
            "v",
            &["github.com".into(), "*.githubusercontent.com".into()],
        );
        assert!(t.allows("github.com"));
        assert!(t.allows("raw.githubusercontent.com"));
        assert!(!t.allows("githubusercontent.com"));
        assert!(!t.allows("evilgithub.com"));
        assert!(!t.allows("github.com.evil.test"));
        assert!(!format!("{t:?}").contains('v') || !format!("{t:?}").contains("\"v\""));
    }
}
