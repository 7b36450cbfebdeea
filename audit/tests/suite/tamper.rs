//! `verify` names the seq for each kind of tampering.

use cordon_audit::{ProblemKind, Report, verify};

use super::{lines, write_lines, write_log};

fn tampered(edit: impl FnOnce(&mut Vec<String>)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 20);
    let before = verify(&path).unwrap();
    assert!(before.intact(), "{:?}", before.problems);
    let mut l = lines(&path);
    edit(&mut l);
    write_lines(&path, &l);
    verify(&path).unwrap()
}

fn assert_problem(report: &Report, kind: ProblemKind, seq: u64) {
    assert!(!report.intact());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == kind && p.seq == Some(seq)),
        "expected {kind:?} at seq {seq}, got {:#?}",
        report.problems
    );
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 20);
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert_eq!(r.records, 20);
    assert_eq!((r.first_seq, r.last_seq), (Some(0), Some(19)));
    assert!(r.head_checked);
    assert!(r.torn_tail.is_none());
}

#[test]
fn edited_record_is_named() {
    let r = tampered(|l| l[7] = l[7].replace("\"outcome\":\"ok\"", "\"outcome\":\"denied\""));
    assert_problem(&r, ProblemKind::Edited, 7);
}

#[test]
fn edited_allow_flag_is_named() {
    let r = tampered(|l| l[3] = l[3].replace("\"allow\":false", "\"allow\":true"));
    assert_problem(&r, ProblemKind::Edited, 3);
}

#[test]
fn edited_last_record_is_caught_by_the_head() {
    let r = tampered(|l| l[19] = l[19].replace("\"outcome\":\"ok\"", "\"outcome\":\"x\""));
    assert_problem(&r, ProblemKind::Edited, 19);
}

#[test]
fn deleted_record_is_named() {
    let r = tampered(|l| {
        l.remove(5);
    });
    assert_problem(&r, ProblemKind::Deleted, 5);
}

#[test]
fn deleted_first_record_is_named() {
    let r = tampered(|l| {
        l.remove(0);
    });
    assert_problem(&r, ProblemKind::Deleted, 0);
}

#[test]
fn inserted_record_is_named() {
    let r = tampered(|l| {
        let copy = l[4].clone();
        l.insert(9, copy);
    });
    assert_problem(&r, ProblemKind::Inserted, 4);
}

#[test]
fn reordered_records_are_named() {
    let r = tampered(|l| l.swap(5, 6));
    assert_problem(&r, ProblemKind::Reordered, 5);
}

#[test]
fn truncated_log_is_named() {
    let r = tampered(|l| l.truncate(16));
    assert_problem(&r, ProblemKind::Truncated, 16);
}

#[test]
fn malformed_line_is_named() {
    let r = tampered(|l| l[10] = "{\"not\": \"a record\"".into());
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::Malformed && p.line == 11)
    );
}

#[test]
fn torn_final_line_is_reported_and_the_rest_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 10);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"v\":1,\"seq\":10,\"ts\":\"2026-");
    std::fs::write(&path, text).unwrap();
    let r = verify(&path).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    let torn = r.torn_tail.expect("torn tail reported");
    assert_eq!(torn.after_seq, Some(9));
    assert_eq!(torn.line, 11);
    assert_eq!(r.records, 10);
}
