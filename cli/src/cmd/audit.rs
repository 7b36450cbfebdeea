//! `cordon audit verify|tail|query`.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use cordon_audit::Kind;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Ctx;
use super::policy::Format;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; names the seq of every edited, deleted, inserted, reordered or
    /// truncated record. Exit 0 intact, 1 tampered.
    Verify(VerifyArgs),
    /// Print the last records, and with --follow every new one as it is written.
    Tail(TailArgs),
    /// Print the records that match every filter given.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log (default: the configured audit log). Rotated segments beside it are included.
    file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// The log (default: the configured audit log).
    file: Option<PathBuf>,
    /// How many records to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: usize,
    /// Keep printing records as they are written (follows rotation).
    #[arg(short, long)]
    follow: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The log (default: the configured audit log). Rotated segments are searched too.
    file: Option<PathBuf>,
    /// Only records of this kind (tool_call, egress, decision, policy_reload, sandbox, file, audit).
    #[arg(long)]
    kind: Option<Kind>,
    /// Only records whose decision denied.
    #[arg(long)]
    denied: bool,
    /// Only records at or after this time: RFC 3339 (2026-11-22T10:00:00Z) or an age (30s, 15m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
}

impl AuditCmd {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            AuditCmd::Verify(a) => verify(ctx, a),
            AuditCmd::Tail(a) => tail(ctx, a),
            AuditCmd::Query(a) => query(ctx, a),
        }
    }
}

fn log_path(ctx: &Ctx, file: Option<PathBuf>) -> Result<PathBuf> {
    match file {
        Some(f) => Ok(f),
        None => ctx.config()?.audit_path(ctx.audit_flag.as_deref()),
    }
}

fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<ExitCode> {
    let path = log_path(ctx, args.file)?;
    let report =
        cordon_audit::verify(&path).with_context(|| format!("cannot verify {}", path.display()))?;
    match args.format {
        Format::Json => output::line(&serde_json::to_string_pretty(&report)?),
        Format::Text => {
            for p in &report.problems {
                let seq = p.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
                output::line(&format!(
                    "TAMPERED seq {seq}: {} ({}:{})",
                    p.message,
                    p.file.display(),
                    p.line
                ));
            }
            if let Some(t) = &report.torn_tail {
                output::warn(&format!(
                    "{}:{}: the final line is cut short ({} bytes after seq {}): a write was interrupted; it was never acknowledged",
                    t.file.display(),
                    t.line,
                    t.bytes,
                    t.after_seq.map_or_else(|| "-".into(), |s| s.to_string()),
                ));
            }
            if !report.head_checked {
                output::warn(
                    "no .head file beside the log: records removed from the end cannot be detected",
                );
            }
            let range = match (report.first_seq, report.last_seq) {
                (Some(a), Some(b)) => format!("seq {a}..={b}"),
                _ => "no records".into(),
            };
            let verdict = if report.intact() { "OK" } else { "FAILED" };
            output::line(&format!(
                "{verdict}: {} records ({range}) in {} file(s), {} problem(s)",
                report.records,
                report.files.len(),
                report.problems.len()
            ));
        }
    }
    Ok(if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn tail(ctx: &Ctx, args: TailArgs) -> Result<ExitCode> {
    let path = log_path(ctx, args.file)?;
    let mut file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let text_end = print_last_lines(&mut file, args.lines)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&path, file, text_end)
}

/// Print the last `n` complete lines; returns the offset after the last complete line.
fn print_last_lines(file: &mut File, n: usize) -> Result<u64> {
    let mut reader = BufReader::new(&mut *file);
    let mut lines: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut offset = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        let read = reader.read_line(&mut buf)?;
        if read == 0 || !buf.ends_with('\n') {
            break;
        }
        offset += read as u64;
        if n > 0 {
            if lines.len() == n {
                lines.pop_front();
            }
            lines.push_back(buf.trim_end().to_owned());
        }
    }
    for l in lines {
        output::line(&l);
    }
    Ok(offset)
}

fn follow(path: &Path, mut file: File, mut offset: u64) -> Result<ExitCode> {
    let mut ino = file.metadata()?.ino();
    let mut pending = String::new();
    loop {
        output::flush();
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(m) = std::fs::metadata(path)
            && m.ino() != ino
        {
            // Rotated: finish the old file, then start the new one from its beginning.
            drain(&mut file, &mut offset, &mut pending)?;
            file = File::open(path)?;
            ino = m.ino();
            offset = 0;
            pending.clear();
        }
        drain(&mut file, &mut offset, &mut pending)?;
    }
}

fn drain(file: &mut File, offset: &mut u64, pending: &mut String) -> Result<()> {
    file.seek(SeekFrom::Start(*offset))?;
    let mut reader = BufReader::new(file);
    loop {
        let mut buf = String::new();
        let read = reader.read_line(&mut buf)?;
        if read == 0 {
            return Ok(());
        }
        *offset += read as u64;
        pending.push_str(&buf);
        if pending.ends_with('\n') {
            output::line(pending.trim_end());
            pending.clear();
        }
    }
}

fn parse_since(spec: &str) -> Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(spec, &Rfc3339) {
        return Ok(t);
    }
    let (num, unit) = spec.split_at(
        spec.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: i64 = num.parse().with_context(|| {
        format!("invalid --since {spec:?} (expected RFC 3339 or an age such as 15m)")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("invalid --since unit {unit:?} (expected s, m, h or d)"),
    };
    Ok(OffsetDateTime::now_utc() - time::Duration::seconds(secs))
}

fn query(ctx: &Ctx, args: QueryArgs) -> Result<ExitCode> {
    let path = log_path(ctx, args.file)?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let records = cordon_audit::read::records(&path, true)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut matched = 0usize;
    for r in records {
        if let Some(k) = args.kind
            && r.get("kind").and_then(Value::as_str) != Some(k.as_str())
        {
            continue;
        }
        if args.denied && r.pointer("/decision/allow").and_then(Value::as_bool) != Some(false) {
            continue;
        }
        if let Some(since) = since {
            let ts = r
                .get("ts")
                .and_then(Value::as_str)
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            if ts.is_none_or(|t| t < since) {
                continue;
            }
        }
        matched += 1;
        output::line(&serde_json::to_string(&r)?);
    }
    Ok(if matched > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
