//! Audit log throughput.
//!
//! - `append/fsync-one-caller`: one caller that waits for each record (an fsync per record).
//! - `append/fsync-pipelined`: 1,000 records in flight at once (what a busy proxy or MCP server
//!   does); group commit shares an fsync across every record queued while the last one ran.
//! - `append/write-pipelined`: the same without fsync (`durability = "write"`).
//! - `verify/20k`: checking a 20,000-record chain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cordon_audit::{AuditLog, AuditOptions, DecisionRecord, Durability, Event, Kind, verify};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn event(i: u64) -> Event {
    Event::new(Kind::Egress, "CONNECT")
        .target(format!("host{i}.example.com:443"))
        .actor("bench")
        .sandbox("ws-1")
        .decision(DecisionRecord {
            allow: true,
            reasons: vec![],
            policy: "rego:0123456789ab".into(),
        })
        .outcome("ok")
        .duration_ms(3)
}

fn opts(durability: Durability) -> AuditOptions {
    AuditOptions {
        durability,
        rotate_bytes: None,
        ..AuditOptions::default()
    }
}

fn pipelined(log: &AuditLog, n: u64) -> Duration {
    let start = Instant::now();
    let pending: Vec<_> = (0..n).map(|i| log.submit(event(i))).collect();
    for p in pending {
        p.wait().unwrap();
    }
    start.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("append");

    let log = AuditLog::open(&dir.path().join("one.jsonl"), opts(Durability::Fsync)).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("fsync-one-caller", |b| {
        b.iter(|| black_box(log.append(event(1)).unwrap()))
    });
    drop(log);

    g.throughput(Throughput::Elements(1000));
    let log = AuditLog::open(&dir.path().join("pipe.jsonl"), opts(Durability::Fsync)).unwrap();
    g.bench_function("fsync-pipelined", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pipelined(&log, 1000)).sum())
    });
    drop(log);

    let log = AuditLog::open(&dir.path().join("write.jsonl"), opts(Durability::Write)).unwrap();
    g.bench_function("write-pipelined", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pipelined(&log, 1000)).sum())
    });
    drop(log);
    g.finish();
}

fn bench_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verify.jsonl");
    let log = AuditLog::open(&path, opts(Durability::Write)).unwrap();
    pipelined(&log, 20_000);
    drop(log);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("20k", |b| {
        b.iter(|| assert!(verify(black_box(&path)).unwrap().intact()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench_append, bench_verify
}
criterion_main!(benches);
