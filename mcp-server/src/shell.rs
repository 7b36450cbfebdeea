//! The shell tools: a command run to completion (with progress while it runs, killed when the
//! call is cancelled), and background processes an agent starts, reads by offset and stops.
//! Everything runs in the workspace's sandbox.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cordon_sandbox::{Cancel, Command, Exit, Outcome, Signal, Stdin, Stream};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ToolError;
use crate::output::{
    Ended, ExecOut, KillOut, ProcessInfo, ProcessListOut, ProcessReadOut, ProcessWriteOut, StartOut,
};
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
    /// `exec` only: seconds the call waits for the command (default and at most 50, under the
    /// usual 60 s client timeout). A command still running then goes on in the background,
    /// and the call returns its id for `process_read`.
    pub wait_secs: Option<u64>,
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

/// How a run ended, or why it could not run.
fn ended(result: &Result<Outcome, String>) -> Ended {
    match result {
        Ok(o) => {
            let (exit_code, signal) = match o.exit {
                Exit::Code(c) => (Some(c), None),
                Exit::Signal(s) => (None, Some(s)),
            };
            Ended {
                exit_code,
                signal,
                timed_out: o.timed_out,
                killed: o.cancelled,
                error: None,
            }
        }
        Err(e) => Ended {
            exit_code: None,
            signal: None,
            timed_out: false,
            killed: false,
            error: Some(e.clone()),
        },
    }
}

/// How long `exec` waits at most before handing the command back as a background process.
pub const MAX_WAIT: Duration = Duration::from_secs(50);

/// `exec`: starts the command as a process and waits for it (reporting output to `progress`);
/// `cancel` kills the tree. One that outlives the wait goes on in the background and the
/// result says how to poll it.
pub fn exec(
    ws: &Arc<Workspace>,
    args: &ExecArgs,
    cancel: Cancel,
    progress: &mut dyn FnMut(u64),
) -> Result<(ExecOut, Option<Outcome>), ToolError> {
    let wait = args
        .wait_secs
        .map_or(MAX_WAIT, Duration::from_secs)
        .min(MAX_WAIT);
    let id = spawn(ws, args.command()?, cancel, None)?;
    let started = Instant::now();
    let mut reported = 0u64;
    let mut reported_at: Option<Instant> = None;
    let mut table = lock(&ws.processes.table)?;
    loop {
        {
            let Some(p) = table.get(&id) else {
                return Err(ToolError::Io("the process vanished".into()));
            };
            if p.finished.is_some() {
                let Some(p) = table.remove(&id) else {
                    return Err(ToolError::Io("the process vanished".into()));
                };
                let (truncated, duration_ms) = p.outcome.as_ref().map_or((false, 0), |o| {
                    (
                        o.truncated,
                        u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
                    )
                });
                let out = ExecOut {
                    running: false,
                    id: None,
                    message: None,
                    ended: p
                        .finished
                        .clone()
                        .unwrap_or_else(|| ended(&Err("no result".into()))),
                    stdout: p.stdout.shown(),
                    stderr: p.stderr.shown(),
                    truncated,
                    duration_ms,
                };
                return Ok((out, p.outcome));
            }
            let total = p.dropped + p.output.len() as u64;
            if total > reported && reported_at.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                reported = total;
                reported_at = Some(Instant::now());
                progress(total);
            }
        }
        if started.elapsed() >= wait {
            return Ok((
                ExecOut {
                    running: true,
                    id: Some(id),
                    message: Some(format!(
                        "still running after {} s; it goes on in the background: read its output with process_read (id {id}), stop it with process_kill",
                        wait.as_secs()
                    )),
                    ended: Ended {
                        exit_code: None,
                        signal: None,
                        timed_out: false,
                        killed: false,
                        error: None,
                    },
                    stdout: String::new(),
                    stderr: String::new(),
                    truncated: false,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                },
                None,
            ));
        }
        // Woken by output and by the end; the bound re-checks the wait and pending progress.
        let left = wait.saturating_sub(started.elapsed()).min(PROGRESS_EVERY);
        table = ws
            .processes
            .changed
            .wait_timeout(table, left)
            .map_err(|_| ToolError::Io("a process table lock was poisoned".into()))?
            .0;
    }
}

/// At most one progress notification per this interval (output comes in many small pieces);
/// output that arrived meanwhile is reported once the interval is over.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// One background process.
#[derive(Debug)]
struct Process {
    argv: Vec<String>,
    started: Instant,
    /// Interleaved output as it came; bytes before `dropped` are gone.
    output: Vec<u8>,
    dropped: u64,
    /// The same output by stream, head and tail kept, for `exec`'s result.
    stdout: Collected,
    stderr: Collected,
    cancel: Cancel,
    /// Its standard input, for `process_write` (none for `exec`: end-of-file).
    stdin: Option<Stdin>,
    finished: Option<Ended>,
    outcome: Option<Outcome>,
}

/// The background processes of one workspace.
#[derive(Debug, Default)]
pub struct Processes {
    next: Mutex<u64>,
    table: Arc<Mutex<BTreeMap<u64, Process>>>,
    /// Signalled when a process has new output or has ended, so `exec` answers at once.
    changed: Arc<Condvar>,
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

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, ToolError> {
    m.lock()
        .map_err(|_| ToolError::Io("a process table lock was poisoned".into()))
}

/// `process_start`: the command runs on its own thread; the call returns its id at once.
pub fn start(ws: &Arc<Workspace>, args: &ExecArgs) -> Result<StartOut, ToolError> {
    let cmd = args.command()?;
    let argv: Vec<String> = cmd
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cancel = Cancel::new().map_err(|e| ToolError::Io(e.to_string()))?;
    let id = spawn(ws, cmd, cancel, Some(Stdin::new()))?;
    Ok(StartOut { id, argv })
}

/// Runs `cmd` on a thread of its own as a process in the workspace's table.
fn spawn(
    ws: &Arc<Workspace>,
    cmd: Command,
    cancel: Cancel,
    stdin: Option<Stdin>,
) -> Result<u64, ToolError> {
    let mut cmd = cmd.cancel(cancel.clone());
    if let Some(s) = &stdin {
        cmd = cmd.stdin(s.clone());
    }
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
            argv,
            started: Instant::now(),
            output: Vec::new(),
            dropped: 0,
            stdout: Collected::default(),
            stderr: Collected::default(),
            cancel,
            stdin,
            finished: None,
            outcome: None,
        },
    );
    let ws2 = Arc::clone(ws);
    std::thread::Builder::new()
        .name(format!("cordon-process-{id}"))
        .spawn(move || {
            let table = Arc::clone(&ws2.processes.table);
            let changed = Arc::clone(&ws2.processes.changed);
            let result = ws2.sandbox.run(&cmd, &mut |stream, bytes| {
                if let Ok(mut t) = table.lock()
                    && let Some(p) = t.get_mut(&id)
                {
                    match stream {
                        Stream::Stdout => p.stdout.keep(bytes),
                        Stream::Stderr => p.stderr.keep(bytes),
                    }
                    p.output.extend_from_slice(bytes);
                    if p.output.len() > MAX_KEPT {
                        let cut = p.output.len() - MAX_KEPT;
                        p.output.drain(..cut);
                        p.dropped += cut as u64;
                    }
                }
                changed.notify_all();
            });
            let result = result.map_err(|e| e.to_string());
            let done = ended(&result);
            let outcome = result.ok();
            if let Ok(mut t) = table.lock()
                && let Some(p) = t.get_mut(&id)
            {
                p.finished = Some(done);
                p.outcome = outcome;
            }
            changed.notify_all();
        })
        .map_err(|e| ToolError::Io(format!("cannot start a thread: {e}")))?;
    Ok(id)
}

/// `process_read`.
pub fn read(ws: &Workspace, args: &ReadArgs) -> Result<ProcessReadOut, ToolError> {
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
    Ok(ProcessReadOut {
        id: args.id,
        output: chunk,
        offset: from,
        next_offset: p.dropped + end as u64,
        skipped: from - args.offset.min(from),
        running: p.finished.is_none(),
        result: p.finished.clone(),
    })
}

/// Writes to a background process's standard input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The id `process_start` returned.
    pub id: u64,
    /// Text to write (include the newline a line-reading program waits for).
    #[serde(default)]
    pub data: String,
    /// Close the input afterwards: the program reads end-of-file.
    #[serde(default)]
    pub close: bool,
}

/// `process_write`.
pub fn write(ws: &Workspace, args: &WriteArgs) -> Result<ProcessWriteOut, ToolError> {
    let stdin = {
        let table = lock(&ws.processes.table)?;
        let p = table
            .get(&args.id)
            .ok_or_else(|| ToolError::NotFound(format!("no process {}", args.id)))?;
        if p.finished.is_some() {
            return Err(ToolError::Invalid(format!(
                "process {} has ended; its input is closed",
                args.id
            )));
        }
        p.stdin
            .clone()
            .ok_or_else(|| ToolError::Invalid(format!("process {} takes no input", args.id)))?
    };
    let written = if args.data.is_empty() {
        0
    } else {
        stdin
            .write(args.data.as_bytes())
            .map_err(|e| ToolError::Invalid(format!("process {}: {e}", args.id)))?
    };
    if args.close {
        stdin.close();
    }
    Ok(ProcessWriteOut {
        id: args.id,
        bytes_written: written as u64,
        all_written: written == args.data.len(),
        closed: args.close,
    })
}

/// What `process_kill` sends.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub enum SignalName {
    /// Ends the process and everything it started, at once. The default.
    #[default]
    #[serde(rename = "KILL")]
    Kill,
    /// The polite stop; the command may clean up first.
    #[serde(rename = "TERM")]
    Term,
    /// What Ctrl-C sends.
    #[serde(rename = "INT")]
    Int,
    /// Hangup; many servers reload on it.
    #[serde(rename = "HUP")]
    Hup,
    /// Quit.
    #[serde(rename = "QUIT")]
    Quit,
    /// User signal 1.
    #[serde(rename = "USR1")]
    Usr1,
    /// User signal 2.
    #[serde(rename = "USR2")]
    Usr2,
}

impl SignalName {
    /// The signal to forward, or `None` for KILL (the whole tree goes).
    fn forwarded(self) -> Option<Signal> {
        match self {
            SignalName::Kill => None,
            SignalName::Term => Some(Signal::Terminate),
            SignalName::Int => Some(Signal::Interrupt),
            SignalName::Hup => Some(Signal::Hangup),
            SignalName::Quit => Some(Signal::Quit),
            SignalName::Usr1 => Some(Signal::User1),
            SignalName::Usr2 => Some(Signal::User2),
        }
    }
}

/// Arguments of `process_kill`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillArgs {
    /// The id `process_start` returned.
    pub id: u64,
    /// KILL (the default) ends the process and everything it started at once. The others go
    /// to the command's process group (the command and the children it did not move to groups
    /// of their own), which may handle them; follow with process_read to see how it ended.
    #[serde(default)]
    pub signal: SignalName,
}

/// `process_kill`.
pub fn kill(ws: &Workspace, args: &KillArgs) -> Result<KillOut, ToolError> {
    let table = lock(&ws.processes.table)?;
    let p = table
        .get(&args.id)
        .ok_or_else(|| ToolError::NotFound(format!("no process {}", args.id)))?;
    let sent = match args.signal.forwarded() {
        None => {
            p.cancel.cancel();
            "KILL"
        }
        Some(sig) => {
            p.cancel.signal(sig);
            sig.name()
        }
    };
    Ok(KillOut {
        id: args.id,
        was_running: p.finished.is_none(),
        signal: sent.to_owned(),
    })
}

/// `process_list`.
pub fn list(ws: &Workspace) -> Result<ProcessListOut, ToolError> {
    let table = lock(&ws.processes.table)?;
    let processes = table
        .iter()
        .map(|(id, p)| ProcessInfo {
            id: *id,
            argv: p.argv.clone(),
            running: p.finished.is_none(),
            seconds: p.started.elapsed().as_secs(),
            output_bytes: p.dropped + p.output.len() as u64,
        })
        .collect();
    Ok(ProcessListOut { processes })
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
