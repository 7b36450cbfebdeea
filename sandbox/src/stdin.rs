//! A command's standard input, for callers that feed it while it runs (an MCP agent typing
//! into a background process). Without one, the command reads end-of-file at once, as from
//! /dev/null.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// What a caller may write before the command starts: one pipe's worth, so handing it over
/// can never block the run.
pub const MAX_PENDING: usize = 64 << 10;

#[derive(Debug)]
enum State {
    /// The run has not started: writes wait here (and a close is remembered).
    Waiting { pending: Vec<u8>, close: bool },
    /// The pipe to the running command (non-blocking).
    Open(std::fs::File),
    /// Closed by the caller, or the run ended.
    Closed,
}

/// Where [`crate::Sandbox::run`] puts the writing end of the command's stdin while it runs.
/// Clone it before the run and write from another thread; writes before the command starts
/// are kept (up to [`MAX_PENDING`]) and delivered first; the run closes it when it ends.
#[derive(Debug, Clone)]
pub struct Stdin {
    state: Arc<Mutex<State>>,
}

impl Default for Stdin {
    fn default() -> Self {
        Stdin {
            state: Arc::new(Mutex::new(State::Waiting {
                pending: Vec::new(),
                close: false,
            })),
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("the stdin lock was poisoned")
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the command's input is closed")
}

/// Writes what the non-blocking pipe takes now.
fn write_some(pipe: &mut std::fs::File, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        match pipe.write(rest) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Stdin {
    /// An empty slot.
    pub fn new() -> Stdin {
        Stdin::default()
    }

    /// Hands the slot the pipe: what was written before goes first (it fits: at most one
    /// pipe's worth into an empty pipe), then the pipe turns non-blocking, so a command that
    /// does not read cannot stall a writer.
    pub(crate) fn open(&self, fd: OwnedFd) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let mut pipe = std::fs::File::from(fd);
        // SAFETY: fcntl on a descriptor we own, with integer arguments only.
        unsafe {
            let flags = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        *state = match std::mem::replace(&mut *state, State::Closed) {
            State::Waiting { pending, close } => {
                let _ = write_some(&mut pipe, &pending);
                if close {
                    State::Closed
                } else {
                    State::Open(pipe)
                }
            }
            // Closed before the run started: the command reads end-of-file.
            other => other,
        };
    }

    /// Writes as much of `bytes` as the command's input takes now and returns how much that
    /// was (less when the command is not reading). Before the command starts, up to
    /// [`MAX_PENDING`] bytes wait for it. An error once the input is closed.
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        match &mut *state {
            State::Waiting { close: true, .. } | State::Closed => Err(closed()),
            State::Waiting { pending, .. } => {
                let room = MAX_PENDING.saturating_sub(pending.len());
                let n = bytes.len().min(room);
                pending.extend_from_slice(bytes.get(..n).unwrap_or_default());
                Ok(n)
            }
            State::Open(pipe) => write_some(pipe, bytes),
        }
    }

    /// Closes the command's input: it reads end-of-file (after what was written).
    pub fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            match &mut *state {
                State::Waiting { close, .. } => *close = true,
                other => *other = State::Closed,
            }
        }
    }

    /// Ends the slot when the run is over.
    pub(crate) fn finish(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Closed;
        }
    }
}
