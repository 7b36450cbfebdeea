//! Decoders: find secrets hidden in encodings.
//!
//! A scan with decoding looks at the input as it is, then at every layer it can decode from it,
//! recursively: base64 (standard and URL-safe) segments, percent-encoding, JSON string escapes
//! and quoted-printable over the whole input, and gzip or zlib streams found by their magic
//! bytes; brotli when the caller says the content is brotli (it has no magic bytes). Every
//! decoded byte remembers which bytes of the original it came from, so a finding's span (and a
//! redaction) covers the right part of the original: the escaped characters for percent or JSON
//! escapes, the whole encoded segment for base64 and compressed streams.
//!
//! Limits make this safe on hostile input: a depth limit, and a limit on the bytes all layers
//! may expand to together. Past the limit the scan is an error (a decompression bomb), never an
//! out-of-memory; callers on an egress path treat the error as "cannot scan: block".

use std::io::Read;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use crate::scanner::{Finding, Scanner};

/// How far decoding may go.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Layers of decoding below the original (base64 of gzip of JSON is three).
    pub max_depth: usize,
    /// Bytes all decoded layers may add up to.
    pub max_expanded: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_depth: 4,
            max_expanded: 32 * 1024 * 1024,
        }
    }
}

/// A content encoding the caller knows the input to have (an HTTP `Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentEncoding {
    /// As is.
    Identity,
    /// gzip.
    Gzip,
    /// zlib-wrapped deflate (HTTP's `deflate`), or raw deflate.
    Deflate,
    /// brotli.
    Brotli,
}

/// Decoding stopped before the input was fully examined.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoded layers would exceed [`DecodeLimits::max_expanded`].
    #[error(
        "decoded content exceeds the {0}-byte limit (a decompression bomb, or too large to scan)"
    )]
    TooLarge(usize),
    /// The declared content encoding does not decode.
    #[error("content declared {0} does not decode: {1}")]
    Corrupt(&'static str, String),
}

/// One view of the input: bytes, and for each byte the span of the original it came from.
struct Layer {
    bytes: Vec<u8>,
    map: Vec<(u64, u64)>,
    decoders: Vec<String>,
}

impl Layer {
    fn span(&self, start: u64, end: u64) -> (u64, u64) {
        let s = self.map.get(start as usize).map_or(0, |m| m.0);
        let e = end
            .checked_sub(1)
            .and_then(|i| self.map.get(i as usize))
            .map_or(s, |m| m.1);
        (s, e.max(s))
    }
}

struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn take(&mut self, n: usize) -> Result<(), DecodeError> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or(DecodeError::TooLarge(self.limit))?;
        Ok(())
    }
}

impl Scanner {
    /// Scan `input`, and every layer decoded from it, within `limits`.
    pub fn scan_decoded(
        &self,
        input: &[u8],
        limits: DecodeLimits,
    ) -> Result<Vec<Finding>, DecodeError> {
        self.scan_encoded_path(input, None, ContentEncoding::Identity, limits)
    }

    /// [`Scanner::scan_decoded`] for a file's content: rules with `path` conditions apply.
    pub fn scan_decoded_path(
        &self,
        input: &[u8],
        path: Option<&str>,
        limits: DecodeLimits,
    ) -> Result<Vec<Finding>, DecodeError> {
        self.scan_encoded_path(input, path, ContentEncoding::Identity, limits)
    }

    /// Like [`Scanner::scan_decoded`], for content with a known encoding (decoded first; a
    /// finding inside it lists the encoding as its first decoder).
    pub fn scan_encoded(
        &self,
        input: &[u8],
        encoding: ContentEncoding,
        limits: DecodeLimits,
    ) -> Result<Vec<Finding>, DecodeError> {
        self.scan_encoded_path(input, None, encoding, limits)
    }

    fn scan_encoded_path(
        &self,
        input: &[u8],
        path: Option<&str>,
        encoding: ContentEncoding,
        limits: DecodeLimits,
    ) -> Result<Vec<Finding>, DecodeError> {
        let mut budget = Budget {
            left: limits.max_expanded,
            limit: limits.max_expanded,
        };
        let whole = (0, input.len() as u64);
        let root = match encoding {
            ContentEncoding::Identity => Layer {
                bytes: input.to_vec(),
                map: (0..input.len() as u64).map(|i| (i, i + 1)).collect(),
                decoders: Vec::new(),
            },
            other => {
                let (name, bytes) = decompress(input, other, &mut budget)?;
                Layer {
                    map: vec![whole; bytes.len()],
                    bytes,
                    decoders: vec![name.to_owned()],
                }
            }
        };
        let mut out: Vec<Finding> = Vec::new();
        let mut stack = vec![(root, 0usize)];
        while let Some((layer, depth)) = stack.pop() {
            for mut f in self.scan_path(&layer.bytes, path) {
                let (s, e) = layer.span(f.start, f.end);
                f.start = s;
                f.end = e;
                f.line = line_at(input, s);
                f.decoders = layer.decoders.clone();
                if !out.iter().any(|o| {
                    o.rule == f.rule && o.fingerprint == f.fingerprint && o.start == f.start
                }) {
                    out.push(f);
                }
            }
            if depth < limits.max_depth {
                for child in children(&layer, &mut budget)? {
                    stack.push((child, depth + 1));
                }
            }
        }
        out.sort_by(|a, b| (a.start, a.end, &a.rule).cmp(&(b.start, b.end, &b.rule)));
        Ok(out)
    }
}

fn line_at(input: &[u8], offset: u64) -> u64 {
    1 + input
        .get(..offset as usize)
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

/// Every layer one decoding step below `layer`.
fn children(layer: &Layer, budget: &mut Budget) -> Result<Vec<Layer>, DecodeError> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<Layer>, name: &str, bytes: Vec<u8>, map: Vec<(u64, u64)>| {
        let mut decoders = layer.decoders.clone();
        decoders.push(name.to_owned());
        out.push(Layer {
            bytes,
            map,
            decoders,
        });
    };
    for (name, f) in [
        (
            "percent",
            percent as fn(&[u8]) -> Option<(Vec<u8>, Vec<usize>)>,
        ),
        ("json-escape", json_unescape),
        ("quoted-printable", quoted_printable),
    ] {
        if let Some((bytes, src)) = f(&layer.bytes) {
            budget.take(bytes.len())?;
            let map = src
                .windows(2)
                .map(|w| match *w {
                    [from, to] => {
                        let a = layer.map.get(from).copied().unwrap_or_default();
                        let b = layer.map.get(to.saturating_sub(1)).copied().unwrap_or(a);
                        (a.0, b.1)
                    }
                    _ => (0, 0),
                })
                .collect();
            push(&mut out, name, bytes, map);
        }
    }
    // Compressed streams at the very start of a layer (a decoded base64 blob, a body).
    if let Some(kind) = compressed_kind(&layer.bytes) {
        // Found by its magic bytes, not declared: if it does not decode, it was not a
        // compressed stream, and the layer is skipped. Only the size limit stops the scan.
        match decompress(&layer.bytes, kind, budget) {
            Ok((name, bytes)) => {
                let whole = layer.span(0, layer.bytes.len() as u64);
                let n = bytes.len();
                push(&mut out, name, bytes, vec![whole; n]);
            }
            Err(DecodeError::Corrupt(..)) => {}
            Err(e) => return Err(e),
        }
    }
    with_base64(layer, out, budget)
}

/// Add a layer for every base64 segment of `layer` worth decoding.
fn with_base64(
    layer: &Layer,
    mut out: Vec<Layer>,
    budget: &mut Budget,
) -> Result<Vec<Layer>, DecodeError> {
    for (start, end) in base64_segments(&layer.bytes) {
        let Some(seg) = layer.bytes.get(start..end) else {
            continue;
        };
        let Some(bytes) = decode_base64(seg) else {
            continue;
        };
        if !worth_scanning(&bytes) {
            continue;
        }
        budget.take(bytes.len())?;
        let span = layer.span(start as u64, end as u64);
        let n = bytes.len();
        let mut decoders = layer.decoders.clone();
        decoders.push("base64".to_owned());
        out.push(Layer {
            bytes,
            map: vec![span; n],
            decoders,
        });
    }
    Ok(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decoded bytes and, for each, the index in the input where its source starts (plus a final
/// entry: the input's length), so that a decoded byte maps to `src[i]..src[i + 1]`.
type Decoded = Option<(Vec<u8>, Vec<usize>)>;

/// Percent-decoding (`%41` -> `A`), when the input has at least one escape.
fn percent(input: &[u8]) -> Decoded {
    let mut out = Vec::with_capacity(input.len());
    let mut src = Vec::with_capacity(input.len() + 1);
    let mut i = 0;
    let mut changed = false;
    while let Some(&b) = input.get(i) {
        src.push(i);
        let escape = (b == b'%')
            .then(|| Some(hex_val(*input.get(i + 1)?)? << 4 | hex_val(*input.get(i + 2)?)?))
            .flatten();
        match escape {
            Some(v) => {
                out.push(v);
                i += 3;
                changed = true;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    src.push(input.len());
    changed.then_some((out, src))
}

/// JSON string escapes (`\"`, `\\`, `\/`, `\n`, `\u0041`, ...), when the input has one.
fn json_unescape(input: &[u8]) -> Decoded {
    let mut out = Vec::with_capacity(input.len());
    let mut src = Vec::with_capacity(input.len() + 1);
    let mut i = 0;
    let mut changed = false;
    while let Some(&b) = input.get(i) {
        let simple = |c: u8| match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'b' => Some(8),
            b'f' => Some(12),
            _ => None,
        };
        if b == b'\\' {
            if let Some(c) = input.get(i + 1).copied().and_then(simple) {
                src.push(i);
                out.push(c);
                i += 2;
                changed = true;
                continue;
            }
            if input.get(i + 1) == Some(&b'u') {
                let code = input.get(i + 2..i + 6).and_then(|h| {
                    h.iter()
                        .try_fold(0u32, |acc, &d| Some(acc << 4 | u32::from(hex_val(d)?)))
                });
                if let Some(code) = code {
                    let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                    let mut buf = [0u8; 4];
                    for &byte in ch.encode_utf8(&mut buf).as_bytes() {
                        src.push(i);
                        out.push(byte);
                    }
                    i += 6;
                    changed = true;
                    continue;
                }
            }
        }
        src.push(i);
        out.push(b);
        i += 1;
    }
    src.push(input.len());
    changed.then_some((out, src))
}

/// Quoted-printable (`=3D`, soft line breaks), when the input clearly is: at least two
/// upper-case `=XX` escapes. A soft line break alone is no evidence: base64 padding at the end
/// of a line looks exactly like one.
fn quoted_printable(input: &[u8]) -> Decoded {
    let escapes = input
        .windows(3)
        .filter(|w| {
            w.first() == Some(&b'=')
                && w.get(1..).is_some_and(|h| {
                    h.iter()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
                })
        })
        .count();
    if escapes < 2 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut src = Vec::with_capacity(input.len() + 1);
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'=' {
            if input.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            if input.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex_val(c)),
                input.get(i + 2).and_then(|&c| hex_val(c)),
            ) {
                src.push(i);
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        src.push(i);
        out.push(b);
        i += 1;
    }
    src.push(input.len());
    Some((out, src))
}

fn compressed_kind(bytes: &[u8]) -> Option<ContentEncoding> {
    match bytes {
        [0x1f, 0x8b, 0x08, ..] => Some(ContentEncoding::Gzip),
        [a @ 0x78, b, ..] if (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 => {
            Some(ContentEncoding::Deflate)
        }
        _ => None,
    }
}

/// Decompress within the budget: one byte past it is an error, so a bomb stops early.
fn decompress(
    input: &[u8],
    kind: ContentEncoding,
    budget: &mut Budget,
) -> Result<(&'static str, Vec<u8>), DecodeError> {
    let limit = budget.left as u64 + 1;
    let mut out = Vec::new();
    let (name, result) = match kind {
        ContentEncoding::Gzip => (
            "gzip",
            flate2::read::MultiGzDecoder::new(input)
                .take(limit)
                .read_to_end(&mut out),
        ),
        ContentEncoding::Deflate => {
            let zlib = flate2::read::ZlibDecoder::new(input)
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                (
                    "deflate",
                    flate2::read::DeflateDecoder::new(input)
                        .take(limit)
                        .read_to_end(&mut out),
                )
            } else {
                ("deflate", zlib)
            }
        }
        ContentEncoding::Brotli => (
            "brotli",
            brotli_decompressor::Decompressor::new(input, 4096)
                .take(limit)
                .read_to_end(&mut out),
        ),
        ContentEncoding::Identity => ("identity", Ok(input.len())),
    };
    if let Err(e) = result {
        if out.len() as u64 >= limit {
            return Err(DecodeError::TooLarge(budget.limit));
        }
        return Err(DecodeError::Corrupt(name, e.to_string()));
    }
    budget.take(out.len())?;
    Ok((name, out))
}

/// Runs of base64 characters long enough to hide a credential, with at most two `=` of
/// padding at the end (an `=` elsewhere separates, as in `key=value`).
fn base64_segments(bytes: &[u8]) -> Vec<(usize, usize)> {
    const MIN: usize = 20;
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).is_some_and(|&b| is_b64(b)) {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).is_some_and(|&b| is_b64(b)) {
            i += 1;
        }
        let mut end = i;
        while end - i < 2 && bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        if i - start >= MIN {
            out.push((start, end));
        }
        i = end.max(i);
    }
    out
}

fn decode_base64(seg: &[u8]) -> Option<Vec<u8>> {
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    let trimmed = {
        let t = seg
            .strip_suffix(b"==")
            .or_else(|| seg.strip_suffix(b"="))
            .unwrap_or(seg);
        // A length of 1 mod 4 cannot be base64: drop the last character (often a delimiter).
        if t.len() % 4 == 1 {
            t.get(..t.len() - 1).unwrap_or(t)
        } else {
            t
        }
    };
    standard
        .decode(trimmed)
        .ok()
        .or_else(|| url.decode(trimmed).ok())
}

/// Decoded base64 is worth a scan if it is compressed, or mostly text.
fn worth_scanning(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    if compressed_kind(bytes).is_some() {
        return true;
    }
    let printable = bytes
        .iter()
        .filter(|&&b| b.is_ascii_graphic() || b == b' ' || b == b'\n' || b == b'\r' || b == b'\t')
        .count();
    printable * 100 >= bytes.len() * 85
}
