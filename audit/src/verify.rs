//! Checking the chain: every way a log can be tampered with is reported with the seq it
//! concerns.
//!
//! What is detected: an edited record (its hash no longer matches the next record's `prev`, or
//! the head's hash), a deleted record (a gap in `seq`), an inserted record (a repeated `seq`),
//! reordered records (a `seq` that goes back), and records removed from the end (the head names a
//! later `seq` than the log holds). A final line cut short by a crash is reported apart: it was
//! never acknowledged, and everything before it still verifies.
//!
//! What is not: someone who can write the log and rewrites the whole chain and the head after
//! an edit. The chain is tamper-evidence for a log the agent cannot write; ship records off the
//! machine (OTLP) where the host itself is not trusted.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::AuditError;
use crate::record::{GENESIS, SCHEMA_VERSION};
use crate::segment::{self, Head};

/// A kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A record's content changed after it was written.
    Edited,
    /// One or more records are missing from the middle.
    Deleted,
    /// A record that was not written by the chain stands in it.
    Inserted,
    /// Records are out of order.
    Reordered,
    /// Records are missing from the end.
    Truncated,
    /// A line that is not a record.
    Malformed,
}

/// One problem found, with the seq it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The seq concerned (the edited, first deleted, inserted or moved record).
    pub seq: Option<u64>,
    /// The file and 1-based line where it was noticed.
    pub file: PathBuf,
    /// The line.
    pub line: usize,
    /// A sentence for a person.
    pub message: String,
}

/// A final line cut short (a crash during a write).
#[derive(Debug, Clone, Serialize)]
pub struct TornTail {
    /// The file.
    pub file: PathBuf,
    /// The line.
    pub line: usize,
    /// How many bytes the partial line has.
    pub bytes: usize,
    /// The last complete record before it.
    pub after_seq: Option<u64>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Records read.
    pub records: u64,
    /// The first and last seq seen.
    pub first_seq: Option<u64>,
    /// The last seq seen.
    pub last_seq: Option<u64>,
    /// Damage found.
    pub problems: Vec<Problem>,
    /// A torn final line, if any.
    pub torn_tail: Option<TornTail>,
    /// Whether a head file was there to check the end against.
    pub head_checked: bool,
}

impl Report {
    /// No tampering found (a torn tail alone is not tampering).
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Line {
    file: PathBuf,
    line: usize,
    parsed: Result<(Value, u64, String), String>,
}

/// Verify the log at `path`, with its rotated segments when `path` is the active file.
pub fn verify(path: &Path) -> Result<Report, AuditError> {
    let mut files = segment::segments(path)?;
    files.push(path.to_owned());
    let mut lines = Vec::new();
    let mut torn_tail = None;
    let last_file = files.len() - 1;
    for (i, file) in files.iter().enumerate() {
        read_lines(file, i == last_file, &mut lines, &mut torn_tail)?;
    }
    let head = segment::read_head(path);
    Ok(check(files, lines, torn_tail, head))
}

fn read_lines(
    file: &Path,
    last: bool,
    out: &mut Vec<Line>,
    torn: &mut Option<TornTail>,
) -> Result<(), AuditError> {
    let f = File::open(file).map_err(|e| AuditError::io(file, "open", e))?;
    let mut reader = BufReader::new(f);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io(file, "read", e))?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        // A final line without its newline is a write cut short by a crash. A rotated segment
        // always ends in a newline, so a cut one is checked like any other line (and flagged).
        if last && buf.last() != Some(&b'\n') {
            *torn = Some(TornTail {
                file: file.to_owned(),
                line: n,
                bytes: buf.len(),
                after_seq: None,
            });
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\n');
        out.push(Line {
            file: file.to_owned(),
            line: n,
            parsed: segment::parse_line(text),
        });
    }
}

fn check(
    files: Vec<PathBuf>,
    lines: Vec<Line>,
    mut torn_tail: Option<TornTail>,
    head: Option<Head>,
) -> Report {
    let all_seqs: HashSet<u64> = lines
        .iter()
        .filter_map(|l| l.parsed.as_ref().ok().map(|(_, s, _)| *s))
        .collect();
    let mut problems = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    // (seq, hash) of the last record accepted into the chain.
    let mut last: Option<(u64, String)> = None;
    let mut first_seq = None;
    let mut records = 0;
    let mut by_seq: Vec<(u64, String)> = Vec::new();
    for l in &lines {
        let (value, seq, hash) = match &l.parsed {
            Ok(p) => p,
            Err(why) => {
                problems.push(Problem {
                    kind: ProblemKind::Malformed,
                    seq: last.as_ref().map(|(s, _)| s + 1),
                    file: l.file.clone(),
                    line: l.line,
                    message: format!("line is not an audit record ({why})"),
                });
                continue;
            }
        };
        let (seq, hash) = (*seq, hash.clone());
        records += 1;
        first_seq.get_or_insert(seq);
        by_seq.push((seq, hash.clone()));
        let prev = value.get("prev").and_then(Value::as_str).unwrap_or("");
        let v = value.get("v").and_then(Value::as_u64).unwrap_or(0);
        let mut problem = |kind, seq, message: String| {
            problems.push(Problem {
                kind,
                seq: Some(seq),
                file: l.file.clone(),
                line: l.line,
                message,
            });
        };
        if v == 0 || v > u64::from(SCHEMA_VERSION) {
            problem(
                ProblemKind::Malformed,
                seq,
                format!("seq {seq}: unknown schema version {v}"),
            );
        }
        if !seen.insert(seq) {
            problem(
                ProblemKind::Inserted,
                seq,
                format!("seq {seq} appears more than once: a record was inserted"),
            );
            continue;
        }
        match &last {
            None => {
                if seq == 0 && prev != GENESIS {
                    problem(
                        ProblemKind::Edited,
                        0,
                        "seq 0 does not start the chain (prev is not the genesis hash)".into(),
                    );
                } else if seq > 0 && prev == GENESIS {
                    problem(
                        ProblemKind::Edited,
                        seq,
                        format!("seq {seq} claims to start the chain"),
                    );
                } else if seq > 0 && files.len() == 1 {
                    problem(
                        ProblemKind::Deleted,
                        0,
                        format!(
                            "the log starts at seq {seq}: records 0 to {} are missing",
                            seq - 1
                        ),
                    );
                }
            }
            Some((last_seq, last_hash)) => {
                let expected = last_seq + 1;
                if seq < expected {
                    problem(
                        ProblemKind::Reordered,
                        seq,
                        format!("seq {seq} stands after seq {last_seq}: records were reordered"),
                    );
                    continue;
                }
                if seq > expected {
                    let moved = (expected..seq).any(|s| all_seqs.contains(&s));
                    if moved {
                        problem(
                            ProblemKind::Reordered,
                            expected,
                            format!(
                                "seq {seq} stands where seq {expected} should: records were reordered"
                            ),
                        );
                    } else {
                        let what = if seq - expected == 1 {
                            format!("seq {expected} is missing: a record was deleted")
                        } else {
                            format!(
                                "seqs {expected} to {} are missing: records were deleted",
                                seq - 1
                            )
                        };
                        problem(ProblemKind::Deleted, expected, what);
                    }
                } else if prev != last_hash {
                    problem(
                        ProblemKind::Edited,
                        *last_seq,
                        format!(
                            "seq {last_seq} was altered: its hash does not match the prev of seq {seq}"
                        ),
                    );
                }
            }
        }
        last = Some((seq, hash));
    }
    let last_seq = last.as_ref().map(|(s, _)| *s);
    if let Some(t) = torn_tail.as_mut() {
        t.after_seq = last_seq;
    }
    let head_checked = head.is_some();
    if let Some(head) = head {
        let file = files.last().cloned().unwrap_or_default();
        match last_seq {
            Some(ls) if head.seq > ls => problems.push(Problem {
                kind: ProblemKind::Truncated,
                seq: Some(ls + 1),
                file,
                line: lines.len(),
                message: format!(
                    "the log ends at seq {ls} but seq {} was written: records were removed from the end",
                    head.seq
                ),
            }),
            None => problems.push(Problem {
                kind: ProblemKind::Truncated,
                seq: Some(0),
                file,
                line: 0,
                message: format!("the log is empty but seq {} was written", head.seq),
            }),
            Some(_) => {
                if let Some((_, h)) = by_seq.iter().rev().find(|(s, _)| *s == head.seq)
                    && *h != head.hash
                {
                    problems.push(Problem {
                        kind: ProblemKind::Edited,
                        seq: Some(head.seq),
                        file,
                        line: 0,
                        message: format!("seq {} was altered: its hash does not match the head", head.seq),
                    });
                }
            }
        }
    }
    Report {
        files,
        records,
        first_seq,
        last_seq,
        problems,
        torn_tail,
        head_checked,
    }
}
