//! The shell tools: a command run to completion (with progress while it runs, killed when the
//! call is cancelled), and background processes an agent starts, reads by offset and stops.
//! Everything runs in the workspace's sandbox.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cordon_sandbox::{Cancel, Command, Exit, Outcome, Stream};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ToolError;
use crate::paths::normalise;
use crate::workspace::Workspace;

/// Default and largest timeout of `exec`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The most a call may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Output a call returns (head and tail kept when more came).
const MAX_RETURNED: usize = 64 << 10;
/// Output a background process keeps.
const MAX_KEPT: usize = 4 << 20;

/// What to run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// The program and its arguments, run without a shell.
    pub argv: Option<Vec<String>>,
    /// A shell command line, run with `sh -c` (give this or `argv`).
    pub command: Option<String>,
    /// Working directory, relative to the workspace root.
    #[serde(default)]
    pub cwd: String,
    /// Seconds before the whole process tree is killed (default 120, at most 3600).
    pub timeout_secs: Option<u64>,
}

impl ExecArgs {
    fn command(&self) -> Result<Command, ToolError> {
        let argv = match (&self.argv, &self.command) {
            (Some(argv), None) if !argv.is_empty() => argv.clone(),
            (None, Some(line)) if !line.trim().is_empty() => {
                vec!["sh".into(), "-c".into(), line.clone()]
            }
            _ => {
                return Err(ToolError::Invalid(
                    "give either argv (a non-empty list) or command (a shell line), not both"
                        .into(),
                ));
            }
        };
        let timeout = self
            .timeout_secs
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
            .min(MAX_TIMEOUT);
        let mut cmd = Command::new(argv)
            .cwd(normalise(&self.cwd)?)
            .timeout(timeout);
        cmd.actor = Some("mcp".into());
        Ok(cmd)
    }
}

/// Output collected with a cap: the head is kept whole, and past the cap only the tail.
#[derive(Debug, Default)]
struct Collected {
    buf: Vec<u8>,
    /// Bytes dropped from the middle.
    cut: u64,
}

impl Collected {
    fn keep(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * MAX_RETURNED {
            let extra = self.buf.len() - MAX_RETURNED;
            self.buf.drain(MAX_RETURNED / 2..MAX_RETURNED / 2 + extra);
            self.cut += extra as u64;
        }
    }

    fn shown(&self) -> String {
        if self.cut == 0 && self.buf.len() <= MAX_RETURNED {
            return String::from_utf8_lossy(&self.buf).into_owned();
        }
        let half = MAX_RETURNED / 2;
        let head = String::from_utf8_lossy(self.buf.get(..half).unwrap_or(&self.buf));
        let tail_from = self
            .buf
            .len()
            .saturating_sub(half)
            .max(half.min(self.buf.len()));
        let tail = String::from_utf8_lossy(self.buf.get(tail_from..).unwrap_or_default());
        let dropped = self.cut + (tail_from - half.min(self.buf.len())) as u64;
        format!("{head}\n[... {dropped} bytes of output cut here ...]\n{tail}")
    }
}

fn exit_json(outcome: &Outcome) -> serde_json::Map<String, Value> {
    let (code, signal) = match outcome.exit {
        Exit::Code(c) => (json!(c), Value::Null),
        Exit::Signal(s) => (Value::Null, json!(s)),
    };
    let mut m = serde_json::Map::new();
    m.insert("exit_code".into(), code);
    m.insert("signal".into(), signal);
    m
}

/// `exec`: runs to the end; `progress` hears of output as it comes; `cancel` kills the tree.
pub fn exec(
    ws: &Workspace,
    args: &ExecArgs,
    cancel: Cancel,
    progress: &mut dyn FnMut(u64),
) -> Result<(Value, Outcome), ToolError> {
    let cmd = args.command()?.cancel(cancel);
    let (mut stdout, mut stderr) = (Collected::default(), Collected::default());
    let mut total = 0u64;
    let outcome = ws.sandbox.run(&cmd, &mut |stream, bytes| {
        total += bytes.len() as u64;
        match stream {
            Stream::Stdout => stdout.keep(bytes),
            Stream::Stderr => stderr.keep(bytes),
        }
        progress(total);
    })?;
    let mut v = exit_json(&outcome);
    v.insert("stdout".into(), json!(stdout.shown()));
    v.insert("stderr".into(), json!(stderr.shown()));
    v.insert("timed_out".into(), json!(outcome.timed_out));
    v.insert("cancelled".into(), json!(outcome.cancelled));
    v.insert("truncated".into(), json!(outcome.truncated));
    v.insert(
        "duration_ms".into(),
        json!(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX)),
    );
    Ok((Value::Object(v), outcome))
}

/// One background process.
#[derive(Debug)]
struct Process {
    argv: Vec<String>,
    started: Instant,
    /// Interleaved output as it came; bytes before `dropped` are gone.
    output: Vec<u8>,
    dropped: u64,
    cancel: Cancel,
    finished: Option<Value>,
}

/// The background processes of one workspace.
#[derive(Debug, Default)]
pub struct Processes {
    next: Mutex<u64>,
    table: Arc<Mutex<BTreeMap<u64, Process>>>,
}

/// Reads a background process's output.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The id `process_start` returned.
    pub id: u64,
    /// Byte offset to read from (the `next_offset` of the previous read; default 0).
    #[serde(default)]
    pub offset: u64,
    /// At most this many bytes (default 64 KiB).
    pub max_bytes: Option<usize>,
}

/// Names a background process.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// The id `process_start` returned.
    pub id: u64,
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, ToolError> {
    m.lock()
        .map_err(|_| ToolError::Io("a process table lock was poisoned".into()))
}

/// `process_start`: the command runs on its own thread; the call returns its id at once.
pub fn start(ws: &Arc<Workspace>, args: &ExecArgs) -> Result<Value, ToolError> {
    let cmd = args.command()?;
    let cancel = Cancel::new().map_err(|e| ToolError::Io(e.to_string()))?;
    let cmd = cmd.cancel(cancel.clone());
    let id = {
        let mut next = lock(&ws.processes.next)?;
        *next += 1;
        *next
    };
    let argv: Vec<String> = cmd
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    lock(&ws.processes.table)?.insert(
        id,
        Process {
            argv: argv.clone(),
            started: Instant::now(),
            output: Vec::new(),
            dropped: 0,
            cancel,
            finished: None,
        },
    );
    let ws2 = Arc::clone(ws);
    std::thread::Builder::new()
        .name(format!("cordon-process-{id}"))
        .spawn(move || {
            let table = Arc::clone(&ws2.processes.table);
            let result = ws2.sandbox.run(&cmd, &mut |_, bytes| {
                if let Ok(mut t) = table.lock()
                    && let Some(p) = t.get_mut(&id)
                {
                    p.output.extend_from_slice(bytes);
                    if p.output.len() > MAX_KEPT {
                        let cut = p.output.len() - MAX_KEPT;
                        p.output.drain(..cut);
                        p.dropped += cut as u64;
                    }
                }
            });
            let done = match result {
                Ok(o) => {
                    let mut v = exit_json(&o);
                    v.insert("timed_out".into(), json!(o.timed_out));
                    v.insert("killed".into(), json!(o.cancelled));
                    Value::Object(v)
                }
                Err(e) => json!({"error": e.to_string()}),
            };
            if let Ok(mut t) = table.lock()
                && let Some(p) = t.get_mut(&id)
            {
                p.finished = Some(done);
            }
        })
        .map_err(|e| ToolError::Io(format!("cannot start a thread: {e}")))?;
    Ok(json!({"id": id, "argv": argv}))
}

/// `process_read`.
pub fn read(ws: &Workspace, args: &ReadArgs) -> Result<Value, ToolError> {
    let table = lock(&ws.processes.table)?;
    let p = table
        .get(&args.id)
        .ok_or_else(|| ToolError::NotFound(format!("no process {}", args.id)))?;
    let max = args.max_bytes.unwrap_or(MAX_RETURNED).clamp(1, 1 << 20);
    let from = args.offset.max(p.dropped);
    let start = usize::try_from(from - p.dropped)
        .unwrap_or(usize::MAX)
        .min(p.output.len());
    let end = start.saturating_add(max).min(p.output.len());
    let chunk = String::from_utf8_lossy(p.output.get(start..end).unwrap_or_default()).into_owned();
    Ok(json!({
        "id": args.id,
        "output": chunk,
        "offset": from,
        "next_offset": p.dropped + end as u64,
        "skipped": from - args.offset.min(from),
        "running": p.finished.is_none(),
        "result": p.finished,
    }))
}

/// `process_kill`.
pub fn kill(ws: &Workspace, args: &IdArgs) -> Result<Value, ToolError> {
    let table = lock(&ws.processes.table)?;
    let p = table
        .get(&args.id)
        .ok_or_else(|| ToolError::NotFound(format!("no process {}", args.id)))?;
    p.cancel.cancel();
    Ok(json!({"id": args.id, "was_running": p.finished.is_none()}))
}

/// `process_list`.
pub fn list(ws: &Workspace) -> Result<Value, ToolError> {
    let table = lock(&ws.processes.table)?;
    let items: Vec<Value> = table
        .iter()
        .map(|(id, p)| {
            json!({
                "id": id,
                "argv": p.argv,
                "running": p.finished.is_none(),
                "seconds": p.started.elapsed().as_secs(),
                "output_bytes": p.dropped + p.output.len() as u64,
            })
        })
        .collect();
    Ok(json!({"processes": items}))
}

impl Drop for Processes {
    fn drop(&mut self) {
        if let Ok(t) = self.table.lock() {
            for p in t.values() {
                p.cancel.cancel();
            }
        }
    }
}
