//! Exact secrets: the operator's real values (tokens from config or the environment), matched
//! verbatim and in the encodings they are most often sent in, since they are exactly what must
//! never leave.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::error::RuleError;
use crate::rule::Rule;

/// Shorter values match too much ordinary text to be safe to look for.
pub const MIN_EXACT_LEN: usize = 8;

/// Every literal `value` may appear as: verbatim, base64 (standard and URL-safe, at each of the
/// three byte alignments, only the characters that do not depend on the neighbouring bytes),
/// percent-encoded, hex (both cases), JSON-escaped.
pub(crate) fn spellings(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![value.to_vec()];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for k in 0..3usize {
            let mut buf = vec![0u8; k];
            buf.extend_from_slice(value);
            let encoded = engine.encode(&buf);
            // Characters fully determined by the value: skip those touched by the k prefix
            // bytes, and a trailing partial group that depends on what follows.
            let skip = (k * 8).div_ceil(6);
            let whole_groups = (k + value.len()) / 3 * 4;
            if whole_groups > skip + 4
                && let Some(inner) = encoded.as_bytes().get(skip..whole_groups)
            {
                out.push(inner.to_vec());
            }
        }
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let percent: Vec<u8> = value
        .iter()
        .flat_map(|&b| {
            if unreserved(b) {
                vec![b]
            } else {
                format!("%{b:02X}").into_bytes()
            }
        })
        .collect();
    out.push(percent);
    out.push(hex::encode(value).into_bytes());
    out.push(hex::encode_upper(value).into_bytes());
    if let Ok(text) = std::str::from_utf8(value)
        && let Ok(json) = serde_json_escape(text)
    {
        out.push(json.into_bytes());
    }
    out.sort();
    out.dedup();
    out
}

/// JSON string escaping without the quotes (no serde_json dependency for one function).
fn serde_json_escape(text: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A rule matching any spelling of `value`. Its id is `exact-secret`, its description names the
/// secret (never the value).
pub(crate) fn rule(name: &str, value: &[u8]) -> Result<Rule, RuleError> {
    if value.len() < MIN_EXACT_LEN {
        return Err(RuleError::Invalid {
            rule: format!("exact secret {name}"),
            why: format!("values shorter than {MIN_EXACT_LEN} bytes match ordinary text; refusing"),
        });
    }
    let literals = spellings(value);
    let alternation = literals
        .iter()
        .map(|l| regex::escape(&String::from_utf8_lossy(l)))
        .collect::<Vec<_>>()
        .join("|");
    let regex = Rule::compile_bytes_regex("exact-secret", &format!("({alternation})"))?;
    let window = literals.iter().map(Vec::len).max().unwrap_or(0) + 8;
    Ok(Rule {
        id: "exact-secret".into(),
        description: format!("the value of {name}"),
        regex,
        secret_group: 1,
        keywords: literals
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect(),
        entropy: None,
        path: None,
        allowlists: Vec::new(),
        window,
    })
}
