//! The writer: one thread per log, group commit, cross-process safe.
//!
//! Callers hand an [`Event`] to the thread and wait for its [`Receipt`]. The thread takes every
//! event queued at that moment, writes them in one `write`, fsyncs once, and only then answers
//! each caller: a record is durable before the operation it describes is acknowledged, and the
//! fsync cost is shared by everything that arrived while the previous one ran.
//!
//! Several cordon processes may append to one log (a long-running server and a CLI command).
//! Each batch is written under an exclusive `flock` on `<log>.lock`; if the log changed since
//! this writer last wrote, it re-reads the tail and continues the chain from there.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `.head` file trails the log by at most this long. Rewriting it (a create and a rename)
/// costs more than the record itself, so a burst of batches shares one rewrite; a head that
/// lags is still consistent (it names a record the log holds), it only leaves the last moments
/// out of truncation detection until it catches up.
const HEAD_INTERVAL: Duration = Duration::from_millis(50);

use rustix::fs::{FlockOperation, flock};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::canonical;
use crate::error::AuditError;
use crate::record::{Event, GENESIS, Kind, Record, SCHEMA_VERSION};
use crate::segment::{self, Head};

/// When a record counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// After `fdatasync`: survives a crash of the machine. The default.
    #[default]
    Fsync,
    /// After `write`: survives a crash of cordon, not of the machine.
    Write,
}

/// How the log is written.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Rotate the active file once it reaches this size. `None` never rotates.
    pub rotate_bytes: Option<u64>,
    /// When a record counts as written.
    pub durability: Durability,
    /// At most this many records per write and fsync.
    pub max_batch: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            rotate_bytes: Some(64 * 1024 * 1024),
            durability: Durability::Fsync,
            max_batch: 4096,
        }
    }
}

/// Proof that a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its seq.
    pub seq: u64,
    /// Its hash (the next record's `prev`).
    pub hash: String,
}

/// A record on its way; [`Pending::wait`] blocks until it is durable.
#[derive(Debug)]
pub struct Pending(mpsc::Receiver<Result<Receipt, AuditError>>);

impl Pending {
    /// Wait until the record is written (or writing failed).
    pub fn wait(self) -> Result<Receipt, AuditError> {
        self.0.recv().map_err(|_| AuditError::Closed)?
    }
}

/// Where the writer sends a record's outcome: a blocked thread, or a task awaiting it.
enum Reply {
    Blocking(mpsc::SyncSender<Result<Receipt, AuditError>>),
    Async(tokio::sync::oneshot::Sender<Result<Receipt, AuditError>>),
}

impl Reply {
    /// A waiter that went away is no error of the writer's: the record is written regardless.
    fn send(self, outcome: Result<Receipt, AuditError>) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Async(tx) => {
                let _ = tx.send(outcome);
            }
        }
    }
}

/// An open audit log. Cheap to share behind an `Arc`; closing waits for queued records.
#[derive(Debug)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<(Event, Reply)>>,
    thread: Option<JoinHandle<()>>,
    /// The writer's state, shared so that async callers can write in place when no fsync is
    /// asked for ([`AuditLog::append_async`]).
    state: Arc<Mutex<State>>,
    durability: Durability,
    session: String,
    path: PathBuf,
}

impl AuditLog {
    /// Open (or create) the log at `path` and start its writer thread. The parent directory is
    /// created with mode 0700 if missing; the log itself is created 0600.
    pub fn open(path: &Path, opts: AuditOptions) -> Result<Self, AuditError> {
        let session = uuid::Uuid::new_v4().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let durability = opts.durability;
        let max_batch = opts.max_batch;
        let state = Arc::new(Mutex::new(State::open(path, session.clone(), opts)?));
        let (tx, rx) = mpsc::channel::<(Event, Reply)>();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("cordon-audit".into())
            .spawn(move || run(&shared, &rx, max_batch, durability == Durability::Write))
            .map_err(|e| AuditError::io(path, "spawn writer thread", e))?;
        Ok(AuditLog {
            tx: Some(tx),
            thread: Some(thread),
            state,
            durability,
            session,
            path: path.to_owned(),
        })
    }

    /// Queue `event`; the returned handle says when it is durable.
    pub fn submit(&self, event: Event) -> Pending {
        let (reply, rx) = mpsc::sync_channel(1);
        self.queue(event, Reply::Blocking(reply));
        Pending(rx)
    }

    /// Write `event` and wait until it is durable.
    pub fn append(&self, event: Event) -> Result<Receipt, AuditError> {
        self.submit(event).wait()
    }

    /// [`AuditLog::append`] for async callers (the egress proxy waits for a record on every
    /// request). With [`Durability::Fsync`] the record joins the writer thread's next batch and
    /// the writer wakes the task, so no thread of a blocking pool is parked on the answer. With
    /// [`Durability::Write`] the record is written in place: one `write(2)` under the lock
    /// costs less than the two thread wake-ups of a hand-off.
    pub async fn append_async(&self, event: Event) -> Result<Receipt, AuditError> {
        if self.durability == Durability::Write {
            let mut state = self.state.lock().map_err(|_| AuditError::Closed)?;
            let mut receipts = state.commit(vec![event])?;
            return receipts.pop().ok_or(AuditError::Closed);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.queue(event, Reply::Async(reply));
        rx.await.map_err(|_| AuditError::Closed)?
    }

    fn queue(&self, event: Event, reply: Reply) {
        if let Some(tx) = &self.tx {
            // A send error drops `reply`, and the waiter then reports Closed.
            let _ = tx.send((event, reply));
        }
    }

    /// This process's session id, stamped on every record it writes.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The active log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: takes every event queued at the moment, writes them as one batch, and
/// answers each waiter. It brings the head file up to date within [`HEAD_INTERVAL`] of the
/// last record; `in_place` says records may be written without passing through here.
fn run(
    state: &Mutex<State>,
    rx: &mpsc::Receiver<(Event, Reply)>,
    max_batch: usize,
    in_place: bool,
) {
    let flush = || {
        if let Ok(mut s) = state.lock() {
            s.flush_head();
        }
    };
    loop {
        // Without writes in place, an idle writer sleeps until the head is behind.
        let timed = in_place || state.lock().is_ok_and(|s| s.head_dirty);
        let next = if timed {
            rx.recv_timeout(HEAD_INTERVAL)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        let first = match next {
            Ok(item) => item,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                flush();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<Event>, Vec<Reply>) = batch.into_iter().unzip();
        let outcome = match state.lock() {
            Ok(mut s) => s.commit(events),
            Err(_) => Err(AuditError::Closed),
        };
        match outcome {
            Ok(receipts) => {
                for (reply, receipt) in replies.into_iter().zip(receipts) {
                    reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                for reply in replies {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }
    flush();
}

fn create_private_dir(dir: &Path) -> Result<(), AuditError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AuditError::io(dir, "create directory", e))
}

fn open_log(path: &Path) -> Result<File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::io(path, "open", e))
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    lock: File,
    file: File,
    /// Length of the active file after our last write; a difference means another writer.
    len: u64,
    ino: u64,
    next_seq: u64,
    prev: String,
    session: String,
    opts: AuditOptions,
    /// Events the writer itself must log before the next batch (a recovered torn tail).
    notes: Vec<Event>,
    /// Records written since the head was last rewritten.
    head_dirty: bool,
    head_at: Instant,
}

impl State {
    fn open(path: &Path, session: String, opts: AuditOptions) -> Result<Self, AuditError> {
        use std::os::unix::fs::OpenOptionsExt;
        let lock_path = segment::lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| AuditError::io(&lock_path, "open", e))?;
        let file = open_log(path)?;
        let mut state = State {
            path: path.to_owned(),
            lock,
            file,
            len: u64::MAX,
            ino: 0,
            next_seq: 0,
            prev: GENESIS.to_owned(),
            session,
            opts,
            notes: Vec::new(),
            head_dirty: false,
            head_at: Instant::now(),
        };
        state.locked(|s| s.resync())?;
        Ok(state)
    }

    /// Run `f` holding the cross-process lock.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let lock_path = segment::lock_path(&self.path);
        flock(&self.lock, FlockOperation::LockExclusive)
            .map_err(|e| AuditError::io(&lock_path, "lock", e.into()))?;
        let out = f(self);
        let _ = flock(&self.lock, FlockOperation::Unlock);
        out
    }

    /// Bring our view of the chain up to date with the file (another process may have written,
    /// rotated, or crashed mid-line).
    fn resync(&mut self) -> Result<(), AuditError> {
        let on_disk = fs::metadata(&self.path).ok();
        let reopen = match &on_disk {
            None => true,
            Some(m) => m.ino() != self.ino,
        };
        if reopen {
            self.file = open_log(&self.path)?;
            let m = self
                .file
                .metadata()
                .map_err(|e| AuditError::io(&self.path, "stat", e))?;
            self.ino = m.ino();
            self.len = u64::MAX;
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| AuditError::io(&self.path, "stat", e))?
            .len();
        if len == self.len {
            return Ok(());
        }
        let (last, complete_len, torn) = segment::tail(&mut self.file, &self.path)?;
        if torn > 0 {
            // A crash cut the last record short. It was never acknowledged; drop it, and say so
            // in the log itself.
            self.file
                .set_len(complete_len)
                .map_err(|e| AuditError::io(&self.path, "truncate torn tail", e))?;
            self.file
                .sync_data()
                .map_err(|e| AuditError::io(&self.path, "fsync", e))?;
            tracing::warn!(path = %self.path.display(), bytes = torn, "audit log had a torn final line; dropped it");
            self.notes.push(
                Event::new(Kind::Audit, "recover")
                    .target(self.path.display().to_string())
                    .outcome("dropped torn final line")
                    .detail("bytes_dropped", torn),
            );
        }
        match last {
            Some(line) => {
                let (value, seq, hash) =
                    segment::parse_line(&line).map_err(|why| AuditError::Unreadable {
                        path: self.path.clone(),
                        why: format!("last record: {why}"),
                    })?;
                let v = value.get("v").and_then(Value::as_u64).unwrap_or(0);
                if v > u64::from(SCHEMA_VERSION) {
                    return Err(AuditError::Unreadable {
                        path: self.path.clone(),
                        why: format!(
                            "written with schema v{v}, this cordon writes v{SCHEMA_VERSION}"
                        ),
                    });
                }
                self.next_seq = seq + 1;
                self.prev = hash;
            }
            // An empty active file after a rotation continues from the head.
            None => match segment::read_head(&self.path) {
                Some(Head { seq, hash }) => {
                    self.next_seq = seq + 1;
                    self.prev = hash;
                }
                None => {
                    self.next_seq = 0;
                    self.prev = GENESIS.to_owned();
                }
            },
        }
        self.len = complete_len;
        Ok(())
    }

    /// Writes `events` as one batch under the cross-process lock. After a failure the file may
    /// hold part of the batch, so the next batch resyncs first.
    fn commit(&mut self, events: Vec<Event>) -> Result<Vec<Receipt>, AuditError> {
        let out = self.locked(|s| s.write_batch(events));
        if let Err(e) = &out {
            tracing::error!(error = %e, "audit write failed; operations waiting on it fail");
            self.len = u64::MAX;
        }
        out
    }

    /// Rewrites the head file if records were written since it last was.
    fn flush_head(&mut self) {
        if self.head_dirty
            && let Err(e) = self.locked(|s| s.write_head())
        {
            tracing::error!(error = %e, "cannot update the audit head file");
        }
    }

    fn stamp(&mut self, event: Event, now: &str) -> Result<(String, Receipt), AuditError> {
        let record = Record {
            v: SCHEMA_VERSION,
            seq: self.next_seq,
            ts: now.to_owned(),
            session: self.session.clone(),
            prev: self.prev.clone(),
            event,
        };
        let value = record
            .to_value()
            .map_err(|e| AuditError::Serialize(e.to_string()))?;
        let line = canonical::to_string(&value);
        let hash = canonical::hash(&line);
        let receipt = Receipt {
            seq: self.next_seq,
            hash: hash.clone(),
        };
        self.next_seq += 1;
        self.prev = hash;
        Ok((line, receipt))
    }

    fn write_batch(&mut self, events: Vec<Event>) -> Result<Vec<Receipt>, AuditError> {
        self.resync()?;
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|e| AuditError::Serialize(e.to_string()))?;
        let (seq0, prev0) = (self.next_seq, self.prev.clone());
        let mut buf = String::new();
        let mut receipts = Vec::with_capacity(events.len());
        let notes = std::mem::take(&mut self.notes);
        let stamped = notes
            .into_iter()
            .map(|e| (e, false))
            .chain(events.into_iter().map(|e| (e, true)));
        for (event, wanted) in stamped {
            match self.stamp(event, &now) {
                Ok((line, receipt)) => {
                    buf.push_str(&line);
                    buf.push('\n');
                    if wanted {
                        receipts.push(receipt);
                    }
                }
                Err(e) => {
                    (self.next_seq, self.prev) = (seq0, prev0);
                    return Err(e);
                }
            }
        }
        let result = self
            .file
            .write_all(buf.as_bytes())
            .map_err(|e| AuditError::io(&self.path, "write", e))
            .and_then(|()| match self.opts.durability {
                Durability::Fsync => self
                    .file
                    .sync_data()
                    .map_err(|e| AuditError::io(&self.path, "fsync", e)),
                Durability::Write => Ok(()),
            });
        if let Err(e) = result {
            (self.next_seq, self.prev) = (seq0, prev0);
            return Err(e);
        }
        self.len = self.len.saturating_add(buf.len() as u64);
        self.head_dirty = true;
        if self.head_at.elapsed() >= HEAD_INTERVAL {
            self.write_head()?;
        }
        if let Some(limit) = self.opts.rotate_bytes
            && self.len >= limit
        {
            self.rotate()?;
        }
        Ok(receipts)
    }

    /// Record the last seq and hash beside the log. Written after the data is durable, so the
    /// head never claims a record the log does not hold.
    fn write_head(&mut self) -> Result<(), AuditError> {
        let head = Head {
            seq: self.next_seq.saturating_sub(1),
            hash: self.prev.clone(),
        };
        let path = segment::head_path(&self.path);
        let tmp = {
            let mut s = path.as_os_str().to_owned();
            s.push(format!(".tmp.{}", std::process::id()));
            PathBuf::from(s)
        };
        let text =
            serde_json::to_string(&head).map_err(|e| AuditError::Serialize(e.to_string()))?;
        fs::write(&tmp, text).map_err(|e| AuditError::io(&tmp, "write", e))?;
        fs::rename(&tmp, &path).map_err(|e| AuditError::io(&path, "rename", e))?;
        self.head_dirty = false;
        self.head_at = Instant::now();
        Ok(())
    }

    /// Move the active file aside as `<log>.<first seq>` and start a new one. The chain
    /// continues: the next record's `prev` is the hash of the last one in the rotated file.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let first = fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| segment::parse_line(l).ok()))
            .map(|(_, seq, _)| seq)
            .unwrap_or(self.next_seq);
        let target = segment::segment_path(&self.path, first);
        fs::rename(&self.path, &target).map_err(|e| AuditError::io(&self.path, "rotate", e))?;
        self.file = open_log(&self.path)?;
        self.ino = self
            .file
            .metadata()
            .map_err(|e| AuditError::io(&self.path, "stat", e))?
            .ino();
        self.len = 0;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        tracing::info!(rotated = %target.display(), "audit log rotated");
        Ok(())
    }
}
