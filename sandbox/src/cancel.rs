//! Stopping a run from another thread: an MCP client cancels a call, and the whole process
//! tree goes as it would on a timeout.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A cancellation handle for one or more runs. Cloning shares it; [`Cancel::cancel`] is
/// sticky. An eventfd, so the run's supervisor waits on it with the output pipes.
#[derive(Debug, Clone)]
pub struct Cancel {
    fd: Arc<OwnedFd>,
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
        Ok(Cancel { fd: Arc::new(fd) })
    }

    /// Kills the run's process tree (now, or as soon as it starts).
    pub fn cancel(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&raw mut p, 1, 0) };
        n > 0 && p.revents & libc::POLLIN != 0
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
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
        assert!(d.is_cancelled());
    }
}
