//! Scanner throughput on one core, full built-in rule set.
//!
//! - `clean`: generated Rust/Python/YAML-like source with no secrets and ordinary keyword
//!   density (the common case: most egress and tool output holds no credential).
//! - `keyword-dense`: the same text with a keyword-bearing line (`token = ...`, URLs,
//!   `password:`) every few lines and a planted secret every ~4 KiB.
//! - `stream-4k`: the clean text pushed through `Scanner::stream` in 4 KiB chunks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use cordon_secrets::Scanner;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A deterministic pseudo-random generator (no dependency, same corpus every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

const IDENTS: &[&str] = &[
    "request", "buffer", "config", "handler", "value", "result", "index", "client", "parser",
    "stream", "offset", "length",
];
const LINES: &[&str] = &[
    "    let {a} = {b}.iter().map(|x| x + 1).collect::<Vec<_>>();\n",
    "fn {a}_{b}(input: &[u8]) -> Result<usize, Error> {{\n",
    "    if {a}.len() > MAX_{b} {{ return Err(Error::TooLarge); }}\n",
    "def {a}({b}, *args, **kwargs):\n        return {b}.get(\"{a}\", None)\n",
    "  {a}:\n    {b}: 42\n    enabled: true\n",
    "// {a} is reset when the {b} is flushed to the underlying writer\n",
    "    self.{a}.push({b}.clone());\n",
    "}}\n",
];
const DENSE: &[&str] = &[
    "token_ttl_seconds = {a}\n",
    "see https://docs.example.org/{a}/{b}\n",
    "password: ${{DB_PASSWORD}}\n",
    "api_key = os.environ[\"{a}\"]\n",
    "secret_name = \"{b}\"\n",
];

fn corpus(size: usize, dense: bool) -> Vec<u8> {
    let mut rng = Lcg(42);
    let mut out = String::with_capacity(size + 256);
    let mut n = 0u64;
    while out.len() < size {
        let template = if dense && rng.next().is_multiple_of(3) {
            rng.pick(DENSE)
        } else {
            rng.pick(LINES)
        };
        let (a, b) = (rng.pick(IDENTS), rng.pick(IDENTS));
        out.push_str(
            &template
                .replace("{a}", a)
                .replace("{b}", b)
                .replace("{{", "{")
                .replace("}}", "}"),
        );
        n += 1;
        if dense && n.is_multiple_of(80) {
            out.push_str(&format!("GH_TOKEN=ghp_{:036}\n", rng.next()));
        }
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::with_defaults().unwrap();
    let size = 8 * 1024 * 1024;
    let clean = corpus(size, false);
    let dense = corpus(size, true);
    assert!(
        scanner.scan(&clean).is_empty(),
        "the clean corpus must be clean"
    );
    assert!(!scanner.scan(&dense).is_empty());
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    g.bench_function("clean", |b| {
        b.iter(|| black_box(scanner.scan(black_box(&clean))))
    });
    g.bench_function("keyword-dense", |b| {
        b.iter(|| black_box(scanner.scan(black_box(&dense))))
    });
    g.bench_function("stream-4k", |b| {
        b.iter(|| {
            let mut s = scanner.stream();
            let mut n = 0;
            for chunk in clean.chunks(4096) {
                n += s.push(chunk).len();
            }
            n + s.finish().len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
