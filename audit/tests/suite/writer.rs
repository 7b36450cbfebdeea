//! The writer: chain continuity, several writers, rotation, recovery, permissions.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use cordon_audit::{
    AuditLog, AuditOptions, Durability, Event, Finding, Fingerprint, Kind, RuleId, verify,
};
use serde_json::Value;

use super::{event, fast, lines, write_log};

#[test]
fn chain_continues_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 5);
    write_log(&path, 5);
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert_eq!((r.records, r.last_seq), (10, Some(9)));
    let sessions: std::collections::HashSet<String> = lines(&path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["session"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sessions.len(), 2);
}

#[test]
fn receipts_match_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, AuditOptions::default()).unwrap();
    let receipts: Vec<_> = (0..10).map(|i| log.submit(event(i))).collect();
    let receipts: Vec<_> = receipts.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(
        receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    drop(log);
    let l = lines(&path);
    for (i, receipt) in receipts.iter().enumerate().skip(1) {
        let rec: Value = serde_json::from_str(&l[i]).unwrap();
        assert_eq!(rec["prev"], Value::String(receipts[i - 1].hash.clone()));
        assert_eq!(rec["seq"], receipt.seq);
    }
}

#[test]
fn async_appends_from_many_tasks_keep_one_chain() {
    // Fsync: through the writer thread. Write: in place, beside the writer's own batches.
    for opts in [AuditOptions::default(), fast()] {
        async_appends_keep_one_chain(opts);
    }
}

fn async_appends_keep_one_chain(opts: AuditOptions) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path, opts).unwrap());
    // Two runtime threads, 200 tasks: each awaits its own record, with no blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let mut seqs: Vec<u64> = rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append_async(event(i)).await.unwrap().seq })
            })
            .collect();
        // Blocking callers at the same time, queued to the writer thread.
        let blocking = {
            let log = log.clone();
            std::thread::spawn(move || {
                (200..250)
                    .map(|i| log.append(event(i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        };
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.extend(blocking.join().unwrap());
        seqs
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (0..250).collect::<Vec<_>>());
    // Two last records once the writer thread is idle: the first rewrites the head (it is
    // old), the second comes too soon after to do so. The head still catches up within its
    // interval, without another record or a close.
    std::thread::sleep(std::time::Duration::from_millis(200));
    for i in 250..252 {
        assert_eq!(rt.block_on(log.append_async(event(i))).unwrap().seq, i);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cordon_audit::segment::read_head(&path).map(|h| h.seq) != Some(251) {
        assert!(
            std::time::Instant::now() < deadline,
            "the head never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(log);
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert_eq!(r.records, 252);
}

#[test]
fn concurrent_writers_on_one_file_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Two independent writers (as two processes would be), each with several threads.
    let a = Arc::new(AuditLog::open(&path, fast()).unwrap());
    let b = Arc::new(AuditLog::open(&path, fast()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let log = if t % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                for i in 0..250 {
                    log.append(event(i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    drop((a, b));
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", &r.problems[..r.problems.len().min(3)]);
    assert_eq!((r.records, r.last_seq), (1000, Some(999)));
}

#[test]
fn rotation_keeps_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let opts = AuditOptions {
        rotate_bytes: Some(4096),
        durability: Durability::Write,
        ..AuditOptions::default()
    };
    let log = AuditLog::open(&path, opts).unwrap();
    for i in 0..200 {
        log.append(event(i)).unwrap();
    }
    drop(log);
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert_eq!(r.records, 200);
    assert!(r.files.len() > 3, "{:?}", r.files);

    // Removing a middle segment is a deletion, named by its first seq.
    let middle = r.files[1].clone();
    let first_seq: u64 = middle
        .extension()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::remove_file(&middle).unwrap();
    let r = verify(&path).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == cordon_audit::ProblemKind::Deleted && p.seq == Some(first_seq)),
        "{:?}",
        r.problems
    );
}

#[test]
fn torn_tail_is_dropped_and_recorded_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"v\":1,\"seq\":3,\"ts");
    std::fs::write(&path, text).unwrap();
    write_log(&path, 2);
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert!(r.torn_tail.is_none());
    // 3 old + 1 recovery note + 2 new.
    assert_eq!(r.records, 6);
    let recovery: Value = serde_json::from_str(&lines(&path)[3]).unwrap();
    assert_eq!(recovery["kind"], "audit");
    assert_eq!(recovery["action"], "recover");
    assert_eq!(recovery["detail"]["bytes_dropped"], 18);
}

#[test]
fn log_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/cordon/audit.jsonl");
    write_log(&path, 1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[test]
fn findings_hold_rule_and_fingerprint_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, fast()).unwrap();
    let finding = Finding {
        rule: RuleId::new("github-pat").unwrap(),
        fingerprint: Fingerprint::new("9f86d081884c7d65").unwrap(),
    };
    log.append(
        Event::new(Kind::Egress, "POST")
            .target("api.example.com:443")
            .findings(vec![finding]),
    )
    .unwrap();
    drop(log);
    let rec: Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(
        rec["findings"],
        serde_json::json!([{"fingerprint": "9f86d081884c7d65", "rule": "github-pat"}])
    );
    // A credential cannot be a fingerprint.
    assert!(Fingerprint::new("ghp_0123456789abcdefghijABCDEFGHIJ012345").is_err());
}

#[test]
fn lines_are_canonical_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3);
    for line in lines(&path) {
        assert!(!line.contains(": ") && !line.contains(", "), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(v["v"], 1);
    }
}

#[test]
fn newer_schema_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "{\"v\":99,\"seq\":0,\"prev\":\"x\"}\n").unwrap();
    let err = AuditLog::open(&path, fast()).unwrap_err();
    assert!(err.to_string().contains("schema v99"), "{err}");
}
