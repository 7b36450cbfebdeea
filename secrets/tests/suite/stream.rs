//! Chunked scanning finds exactly what a whole scan finds, once each.

use cordon_secrets::{Finding, Scanner};
use proptest::prelude::*;

use super::examples;

fn key(f: &Finding) -> (String, u64, u64, u64, String) {
    (
        f.rule.clone(),
        f.start,
        f.end,
        f.line,
        f.fingerprint.clone(),
    )
}

fn chunked(scanner: &Scanner, input: &[u8], cuts: &[usize]) -> Vec<Finding> {
    let mut s = scanner.stream();
    let mut out = Vec::new();
    let mut pos = 0;
    for &c in cuts {
        let c = c.min(input.len()).max(pos);
        out.extend(s.push(&input[pos..c]));
        pos = c;
    }
    out.extend(s.push(&input[pos..]));
    out.extend(s.finish());
    out
}

fn sorted(mut v: Vec<Finding>) -> Vec<(String, u64, u64, u64, String)> {
    let mut k: Vec<_> = v.drain(..).map(|f| key(&f)).collect();
    k.sort();
    k
}

/// A realistic-ish text with every positive example planted in it.
fn corpus() -> Vec<u8> {
    let mut text = String::new();
    for (i, ex) in examples().example.iter().enumerate() {
        text.push_str(&format!(
            "// config block {i}\nlet x = compute(a, b) + {i};\n"
        ));
        for p in &ex.positive {
            text.push_str(p);
            text.push('\n');
        }
        text.push_str("fn helper() -> Result<(), Error> { Ok(()) }\n");
    }
    text.into_bytes()
}

#[test]
fn a_secret_split_at_every_byte_is_found_once() {
    let scanner = Scanner::with_defaults().unwrap();
    let input =
        b"prefix text\nexport GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345 # end\n";
    let whole = sorted(scanner.scan(input));
    assert!(!whole.is_empty());
    for cut in 0..=input.len() {
        assert_eq!(
            sorted(chunked(&scanner, input, &[cut])),
            whole,
            "split at {cut}"
        );
    }
    // One byte at a time.
    let cuts: Vec<usize> = (0..input.len()).collect();
    assert_eq!(sorted(chunked(&scanner, input, &cuts)), whole);
}

#[test]
fn corpus_scanned_in_small_chunks_matches_whole() {
    let scanner = Scanner::with_defaults().unwrap();
    let input = corpus();
    let whole = sorted(scanner.scan(&input));
    assert!(whole.len() >= 60, "{}", whole.len());
    for size in [1usize, 7, 64, 511, 4096] {
        let cuts: Vec<usize> = (size..input.len()).step_by(size).collect();
        assert_eq!(
            sorted(chunked(&scanner, &input, &cuts)),
            whole,
            "chunk size {size}"
        );
    }
}

#[test]
fn memory_is_bounded_by_the_windows() {
    let scanner = Scanner::with_defaults().unwrap();
    let mut s = scanner.stream();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..64 {
        assert!(s.push(&chunk).is_empty());
    }
    // Internal buffer is private; the carry bound is what a stream may keep between chunks.
    assert!(scanner.carry() <= 2 * cordon_secrets::MAX_WINDOW + 64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_gives_the_same_findings(mut cuts in prop::collection::vec(0usize..20_000, 0..40)) {
        let scanner = Scanner::with_defaults().unwrap();
        let input = corpus();
        cuts.sort_unstable();
        let whole = sorted(scanner.scan(&input));
        prop_assert_eq!(sorted(chunked(&scanner, &input, &cuts)), whole);
    }
}
