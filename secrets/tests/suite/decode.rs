//! Secrets hidden in encodings are found, through nested encodings too; bombs are refused.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cordon_secrets::{ContentEncoding, DecodeError, DecodeLimits, Finding, Scanner, redact};

const TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

/// brotli (quality 11) of 20 log lines, a JSON line holding TOKEN, 20 more log lines; made once
/// with Python's brotli module. The token's bytes do not appear in it.
const BROTLI: &str = "1bce0620e5725b5f497f0b09112fc5a788450ed8800397c9165e679b6c50cd63acacc1351c8ced64b0898378f059245e428093874c0781ed5c9148a9c1217cb894f0e30166fcea1555d30dd3b21d779ce68550c6854cb3bc28abba693b026cf847be2a01";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn github(found: &[Finding]) -> &Finding {
    found
        .iter()
        .find(|f| f.rule == "github-pat")
        .unwrap_or_else(|| panic!("token not found: {found:?}"))
}

fn scan(input: &[u8]) -> Vec<Finding> {
    Scanner::with_defaults()
        .unwrap()
        .scan_decoded(input, DecodeLimits::default())
        .unwrap()
}

#[test]
fn base64_standard_and_url_safe() {
    let plain = format!("token={TOKEN}&scope=repo");
    for encoded in [STANDARD.encode(&plain), URL_SAFE_NO_PAD.encode(&plain)] {
        let body = format!("{{\"payload\": \"{encoded}\"}}");
        let found = scan(body.as_bytes());
        let f = github(&found);
        assert_eq!(f.decoders, ["base64"]);
        // The span is the encoded segment in the original.
        assert_eq!(&body[f.start as usize..f.end as usize], encoded);
    }
}

#[test]
fn base64_at_every_alignment() {
    for pad in 0..3 {
        // Non-word padding: the rule itself wants a word boundary before the token.
        let plain = format!("{}{TOKEN}", " ".repeat(pad));
        let found = scan(STANDARD.encode(&plain).as_bytes());
        assert_eq!(github(&found).decoders, ["base64"], "alignment {pad}");
    }
}

#[test]
fn percent_encoding_maps_back_to_the_escapes() {
    let encoded: String = TOKEN.bytes().map(|b| format!("%{b:02X}")).collect();
    let body = format!("q=search&t={encoded}&x=1");
    let found = scan(body.as_bytes());
    let f = github(&found);
    assert_eq!(f.decoders, ["percent"]);
    assert_eq!(&body[f.start as usize..f.end as usize], encoded);
}

#[test]
fn json_unicode_escapes() {
    let escaped: String = TOKEN
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let body = format!("{{\"t\":\"{escaped}\"}}");
    let f = scan(body.as_bytes());
    assert_eq!(github(&f).decoders, ["json-escape"]);
}

#[test]
fn quoted_printable_soft_breaks() {
    let (a, b) = TOKEN.split_at(20);
    let body = format!("Subject: x\n\nthe token is {a}=\n{b} =3D done =3D\n");
    let f = scan(body.as_bytes());
    assert_eq!(github(&f).decoders, ["quoted-printable"]);
}

#[test]
fn nested_base64_of_gzip() {
    // Enough repetition that gzip really compresses (a short input becomes a stored block,
    // where the token would be visible without decompressing).
    let text = format!(
        "{}config:\n  token: {TOKEN}\n{}",
        "log: ok\n".repeat(40),
        "log: ok\n".repeat(40)
    );
    let compressed = gzip(text.as_bytes());
    assert!(!compressed.windows(4).any(|w| w == b"ghp_"));
    let packed = STANDARD.encode(compressed);
    let body = format!("data={packed}");
    let f = scan(body.as_bytes());
    assert_eq!(github(&f).decoders, ["base64", "gzip"]);
    // Redaction covers the whole encoded blob.
    let red = String::from_utf8(redact(body.as_bytes(), &f)).unwrap();
    assert_eq!(red, "data=[REDACTED:github-pat]");
}

#[test]
fn nested_url_encoded_json() {
    let json = format!("{{\"auth\":\"{}\"}}", TOKEN.replace("ghp_", "ghp\\u005f"));
    let encoded: String = json
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let f = scan(format!("body={encoded}").as_bytes());
    assert_eq!(github(&f).decoders, ["percent", "json-escape"]);
}

#[test]
fn declared_content_encodings() {
    let scanner = Scanner::with_defaults().unwrap();
    let text = format!("{{\"token\": \"{TOKEN}\"}}");
    let limits = DecodeLimits::default();
    let found = scanner
        .scan_encoded(&gzip(text.as_bytes()), ContentEncoding::Gzip, limits)
        .unwrap();
    assert_eq!(github(&found).decoders, ["gzip"]);
    let found = scanner
        .scan_encoded(&zlib(text.as_bytes()), ContentEncoding::Deflate, limits)
        .unwrap();
    assert_eq!(github(&found).decoders, ["deflate"]);
    let br = hex::decode(BROTLI).unwrap();
    assert!(!br.windows(4).any(|w| w == b"ghp_"));
    let found = scanner
        .scan_encoded(&br, ContentEncoding::Brotli, limits)
        .unwrap();
    assert_eq!(github(&found).decoders, ["brotli"]);
    let err = scanner
        .scan_encoded(b"not gzip at all", ContentEncoding::Gzip, limits)
        .unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt("gzip", _)), "{err}");
}

#[test]
fn decompression_bomb_is_refused() {
    let scanner = Scanner::with_defaults().unwrap();
    // 256 MiB of zeros: a few hundred KiB gzipped.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1024 * 1024];
    for _ in 0..256 {
        e.write_all(&block).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024);
    let limits = DecodeLimits::default();
    let err = scanner
        .scan_encoded(&bomb, ContentEncoding::Gzip, limits)
        .unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge(_)), "{err}");
    // Hidden in base64, too.
    let wrapped = STANDARD.encode(&bomb);
    let err = scanner
        .scan_decoded(wrapped.as_bytes(), limits)
        .unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge(_)), "{err}");
}

#[test]
fn depth_is_limited() {
    let mut layer = format!("t={TOKEN}");
    for _ in 0..6 {
        layer = STANDARD.encode(&layer);
    }
    let scanner = Scanner::with_defaults().unwrap();
    let shallow = scanner
        .scan_decoded(
            layer.as_bytes(),
            DecodeLimits {
                max_depth: 4,
                ..DecodeLimits::default()
            },
        )
        .unwrap();
    assert!(shallow.iter().all(|f| f.rule != "github-pat"));
    let deep = scanner
        .scan_decoded(
            layer.as_bytes(),
            DecodeLimits {
                max_depth: 8,
                ..DecodeLimits::default()
            },
        )
        .unwrap();
    assert_eq!(github(&deep).decoders.len(), 6);
}

#[test]
fn plain_findings_are_not_repeated_by_decoding() {
    let body = format!("a=%20&t={TOKEN}");
    let found = scan(body.as_bytes());
    assert_eq!(found.iter().filter(|f| f.rule == "github-pat").count(), 1);
    assert!(github(&found).decoders.is_empty());
}

/// Regression (found by the bench corpus): base64 padding at the end of a line looked like a
/// quoted-printable soft line break; the QP layer glued lines into blobs that looked like
/// corrupt gzip, and one corrupt guessed layer failed the whole decoded scan, losing every
/// encoded finding in the file.
#[test]
fn a_corrupt_guessed_layer_does_not_cost_the_rest_of_the_file() {
    let compressed = gzip(
        format!(
            "{}token: {TOKEN}\n{}",
            "log: ok\n".repeat(40),
            "log: ok\n".repeat(40)
        )
        .as_bytes(),
    );
    let packed = STANDARD.encode(&compressed);
    let mut broken = compressed.clone();
    broken.truncate(20); // gzip magic, then nothing: corrupt
    let text = format!(
        "pad: QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\nblob: {}\nkey: {packed}\nnext: line\n",
        STANDARD.encode(&broken)
    );
    let found = scan(text.as_bytes());
    assert_eq!(github(&found).decoders, ["base64", "gzip"]);
}
