//! Policy decision latency.
//!
//! - `network/1000-hosts`: the default policy set with 1,000 allowlisted hosts and 20 suffix
//!   patterns, a connect-phase input with two resolved addresses (goal: <= 20 us p50).
//! - `files/*`: the default files policy on an ordinary write and a rename of a protected
//!   directory's parent (the most expensive path).
//! - `fixture/*`: the OPA-compiled Wasm fixture against regorus on the same Rego and data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::path::Path;

use cordon_policy::input::{FileOp, FilesInput, NetworkInput};
use cordon_policy::{AreaInput, Context, LoadOptions, PolicyConfig, PolicyLocation, PolicySet};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const NHOSTS: usize = 1000;

/// 1,000 exact hosts and 20 wildcard suffixes.
fn network_config() -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config.network.allow = (0..NHOSTS)
        .map(|i| format!("host{i}.example.com"))
        .collect();
    config
        .network
        .allow
        .extend((0..20).map(|i| format!("*.suffix{i}.example.net")));
    config
}

fn network_set() -> PolicySet {
    PolicyLocation::Embedded
        .load(&network_config(), &uncached())
        .unwrap()
}

/// The engine benches measure evaluation, so the verdict cache is off for them.
fn uncached() -> LoadOptions {
    LoadOptions {
        decision_cache: 0,
        ..LoadOptions::default()
    }
}

fn bench_network(c: &mut Criterion) {
    let set = network_set();
    let ctx = Context::default();
    let exact = AreaInput::Network(NetworkInput::connect(
        "host737.example.com",
        443,
        vec![
            "140.82.112.3".parse().unwrap(),
            "2606:50c0:8000::154".parse().unwrap(),
        ],
    ));
    let suffix = AreaInput::Network(NetworkInput::connect(
        "a.b.suffix19.example.net",
        443,
        vec!["140.82.112.3".parse().unwrap()],
    ));
    let denied = AreaInput::Network(NetworkInput::connect(
        "host1.example.com",
        443,
        vec!["169.254.169.254".parse().unwrap()],
    ));
    assert!(set.decide(&ctx, &exact).allow);
    assert!(set.decide(&ctx, &suffix).allow);
    assert!(!set.decide(&ctx, &denied).allow);
    let dns = AreaInput::Network(NetworkInput {
        phase: cordon_policy::input::Phase::Dns,
        ..NetworkInput::connect("host737.example.com", 443, vec![])
    });
    let tools = AreaInput::Tools(cordon_policy::input::ToolsInput {
        tool: "read_file".into(),
        arguments: json!({"path": "src/main.rs"}),
    });
    assert!(set.decide(&ctx, &dns).allow);
    assert!(set.decide(&ctx, &tools).allow);
    let mut g = c.benchmark_group("network/1000-hosts");
    g.bench_function("dns-allow", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&dns))))
    });
    g.bench_function("tools-allow-reference", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&tools))))
    });
    g.bench_function("exact-allow", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&exact))))
    });
    g.bench_function("suffix-allow", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&suffix))))
    });
    g.bench_function("metadata-deny", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&denied))))
    });
    g.finish();

    // The same decision repeated with the verdict cache on (the default): what a proxy pays
    // for the second and later connections to a destination.
    let cached = PolicyLocation::Embedded
        .load(&network_config(), &LoadOptions::default())
        .unwrap();
    assert!(cached.decide(&ctx, &exact).allow);
    let mut g = c.benchmark_group("network/1000-hosts/cached");
    g.bench_function("exact-allow", |b| {
        b.iter(|| black_box(cached.decide(&ctx, black_box(&exact))))
    });
    g.finish();
}

fn bench_files(c: &mut Criterion) {
    let set = PolicyLocation::Embedded
        .load(&PolicyConfig::default(), &uncached())
        .unwrap();
    let ctx = Context::default();
    let write = AreaInput::Files(FilesInput::new(FileOp::Write, "src/main.rs"));
    let mut rename = FilesInput::new(FileOp::Rename, ".github");
    rename.to = Some("old".into());
    let rename = AreaInput::Files(rename);
    assert!(set.decide(&ctx, &write).allow);
    assert!(!set.decide(&ctx, &rename).allow);
    let mut g = c.benchmark_group("files");
    g.bench_function("write-allow", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&write))))
    });
    g.bench_function("rename-protected-parent", |b| {
        b.iter(|| black_box(set.decide(&ctx, black_box(&rename))))
    });
    g.finish();
}

fn load_dir(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PolicySet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let set = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    (dir, set)
}

fn bench_fixture(c: &mut Criterion) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/opa-wasm");
    let read = |n: &str| std::fs::read(fixtures.join(n)).unwrap();
    let input = json!({"host": "raw.githubusercontent.com"});
    let mut g = c.benchmark_group("fixture");
    let (_r, rego) = load_dir(&[
        ("egress.rego", read("egress.rego")),
        ("data.json", read("data.json")),
    ]);
    g.bench_function("regorus", |b| {
        b.iter(|| {
            black_box(
                rego.eval_rule("data.sandbox.egress.decision", black_box(&input))
                    .unwrap(),
            )
        })
    });
    #[cfg(feature = "opa-wasm")]
    {
        let (_w, wasm) = load_dir(&[
            ("policy.wasm", read("decision.wasm")),
            ("data.json", read("data.json")),
        ]);
        g.bench_function("opa-wasm", |b| {
            b.iter(|| black_box(wasm.eval_rule("eval", black_box(&input)).unwrap()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_network, bench_files, bench_fixture
}
criterion_main!(benches);
