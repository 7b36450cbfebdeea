mod crash;
mod props;
mod tamper;
mod writer;

use std::path::Path;

use cordon_audit::{AuditLog, AuditOptions, DecisionRecord, Durability, Event, Kind};

/// Options for tests that do not measure durability: no fsync, no rotation.
pub fn fast() -> AuditOptions {
    AuditOptions {
        durability: Durability::Write,
        rotate_bytes: None,
        ..AuditOptions::default()
    }
}

pub fn event(i: u64) -> Event {
    Event::new(Kind::ToolCall, "read_file")
        .target(format!("src/file{i}.rs"))
        .actor("test")
        .decision(DecisionRecord {
            allow: !i.is_multiple_of(3),
            reasons: vec![],
            policy: "rego:test".into(),
        })
        .outcome("ok")
        .duration_ms(i)
}

/// A log of `n` records written by one writer.
pub fn write_log(path: &Path, n: u64) {
    let log = AuditLog::open(path, fast()).unwrap();
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}
