//! A writer killed with SIGKILL while writing heavily leaves a log that verifies up to its last
//! complete record, and every record it acknowledged is in it.
//!
//! The test runs its own binary again as the writer (selected by an environment variable), so
//! the kill hits a real process mid-write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_audit::{AuditLog, AuditOptions, verify};

use super::event;

const CHILD_ENV: &str = "CORDON_AUDIT_CRASH_CHILD_LOG";

/// In the child: write with default durability from four threads until killed, printing the
/// seq of every acknowledged record.
fn child(path: &str) -> ! {
    let log =
        Arc::new(AuditLog::open(std::path::Path::new(path), AuditOptions::default()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                loop {
                    let receipt = log.append(event(i)).unwrap();
                    println!("{}", receipt.seq);
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0)
}

#[test]
fn sigkill_during_heavy_writing_leaves_a_log_that_verifies() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    let mut proc = Command::new(exe)
        .args([
            "suite::crash::sigkill_during_heavy_writing_leaves_a_log_that_verifies",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    // Wait for a few thousand acknowledged records, then kill mid-stream.
    while acknowledged.len() < 3000 && Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Ok(seq) = line.trim().parse::<u64>() {
            acknowledged.push(seq);
        }
    }
    proc.kill().unwrap(); // SIGKILL
    let status = proc.wait().unwrap();
    assert!(!status.success(), "the writer must have been killed");
    assert!(
        acknowledged.len() >= 3000,
        "writer too slow: {} records in 60 s",
        acknowledged.len()
    );

    let report = verify(&path).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    let last = report.last_seq.unwrap();
    let max_acked = *acknowledged.iter().max().unwrap();
    assert!(
        last >= max_acked,
        "acknowledged seq {max_acked} is missing (log ends at {last})"
    );
    assert_eq!(report.records, last + 1);
}
