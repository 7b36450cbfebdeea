//! Stopping or signalling a run from another thread: an MCP client cancels a call, and the whole
//! process tree goes as it would on a timeout; or an agent asks a long-running server to stop
//! politely (SIGTERM, SIGINT) and lets it clean up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A signal an agent may send to a running command. Only signals whose default effect a
/// command can handle or that end it; SIGKILL is [`Cancel::cancel`], and SIGSTOP would stop the
/// sandbox's init rather than the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP.
    Hangup,
    /// SIGINT, what Ctrl-C sends.
    Interrupt,
    /// SIGQUIT.
    Quit,
    /// SIGTERM, the polite stop.
    Terminate,
    /// SIGUSR1.
    User1,
    /// SIGUSR2.
    User2,
}

impl Signal {
    /// Every signal, in the order of their numbers.
    pub const ALL: [Signal; 6] = [
        Signal::Hangup,
        Signal::Interrupt,
        Signal::Quit,
        Signal::User1,
        Signal::User2,
        Signal::Terminate,
    ];

    /// The signal's number.
    pub fn number(self) -> libc::c_int {
        match self {
            Signal::Hangup => libc::SIGHUP,
            Signal::Interrupt => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Terminate => libc::SIGTERM,
            Signal::User1 => libc::SIGUSR1,
            Signal::User2 => libc::SIGUSR2,
        }
    }

    /// The conventional name without the `SIG` prefix, as `kill -l` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "HUP",
            Signal::Interrupt => "INT",
            Signal::Quit => "QUIT",
            Signal::Terminate => "TERM",
            Signal::User1 => "USR1",
            Signal::User2 => "USR2",
        }
    }

    /// Parses `TERM`, `SIGTERM` or `term`.
    pub fn from_name(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL.into_iter().find(|s| s.name() == bare)
    }
}

/// A cancellation and signalling handle for one or more runs. Cloning shares it;
/// [`Cancel::cancel`] is sticky. An eventfd, so the run's supervisor waits on it with the output
/// pipes; signals wait in a queue beside it until the supervisor forwards them.
#[derive(Debug, Clone)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fd: OwnedFd,
    cancelled: AtomicBool,
    signals: Mutex<Vec<Signal>>,
}

impl Cancel {
    /// A handle not yet cancelled.
    pub fn new() -> io::Result<Cancel> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Cancel {
            inner: Arc::new(Inner {
                fd,
                cancelled: AtomicBool::new(false),
                signals: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Kills the run's process tree (now, or as soon as it starts).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Sends `signal` to the running command's process group, as a terminal's Ctrl-C would:
    /// the command and the children it did not move to groups of their own. A run that has
    /// not started yet, or has ended, does not receive it.
    pub fn signal(&self, signal: Signal) {
        if let Ok(mut q) = self.inner.signals.lock() {
            q.push(signal);
        }
        self.wake();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Signals queued since the last call; consumes the wake-up.
    pub(crate) fn take_signals(&self) -> Vec<Signal> {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from an eventfd we own; a
        // non-blocking eventfd with a zero count answers EAGAIN, which is fine.
        let _ = unsafe {
            libc::read(
                self.inner.fd.as_raw_fd(),
                count.as_mut_ptr().cast(),
                count.len(),
            )
        };
        self.inner
            .signals
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let _ = unsafe {
            libc::write(
                self.inner.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.inner.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_sticky_and_shared() {
        let c = Cancel::new().unwrap();
        let d = c.clone();
        assert!(!d.is_cancelled());
        c.cancel();
        assert!(d.is_cancelled());
        assert!(d.take_signals().is_empty());
        assert!(d.is_cancelled());
    }

    #[test]
    fn signals_queue_until_taken() {
        let c = Cancel::new().unwrap();
        c.signal(Signal::Terminate);
        c.clone().signal(Signal::Interrupt);
        assert!(!c.is_cancelled());
        assert_eq!(c.take_signals(), [Signal::Terminate, Signal::Interrupt]);
        assert!(c.take_signals().is_empty());
    }

    #[test]
    fn names_parse_with_or_without_the_prefix() {
        for s in Signal::ALL {
            assert_eq!(Signal::from_name(s.name()), Some(s));
            assert_eq!(Signal::from_name(&format!("sig{}", s.name())), Some(s));
        }
        assert_eq!(Signal::from_name("KILL"), None);
        assert_eq!(Signal::from_name("STOP"), None);
        assert_eq!(Signal::from_name(""), None);
    }
}
