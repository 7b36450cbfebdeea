//! The bridge: the sandbox's only way out. A TCP listener on 127.0.0.1:PORT, created inside the
//! sandbox's network namespace by the child and handed to the parent, is served from outside:
//! each connection is spliced to the egress proxy's unix socket. No process runs inside for it,
//! and nothing the command does can reach the host's network stack.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// A running bridge; stops (and closes the listener) on drop.
pub(crate) struct Bridge {
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Serves `listener` (inside the sandbox's namespace) by forwarding to `target`.
    pub(crate) fn start(listener: OwnedFd, target: PathBuf) -> io::Result<Bridge> {
        let listener = Arc::new(TcpListener::from(listener));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let thread = {
            let listener = Arc::clone(&listener);
            let stop = Arc::clone(&stop);
            let connections = Arc::clone(&connections);
            std::thread::Builder::new()
                .name("cordon-bridge".into())
                .spawn(move || accept_loop(&listener, &target, &stop, &connections))?
        };
        Ok(Bridge {
            listener,
            stop,
            connections,
            thread: Some(thread),
        })
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept(2) with EINVAL.
        // SAFETY: shutting down a descriptor the listener owns and keeps open until joined.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, target: &Path, stop: &AtomicBool, count: &AtomicU64) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let (tcp, _) = match conn {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "bridge accept ended");
                return;
            }
        };
        count.fetch_add(1, Ordering::Relaxed);
        let target = target.to_owned();
        let spawned = std::thread::Builder::new()
            .name("cordon-bridge-conn".into())
            .spawn(move || {
                if let Err(e) = forward(tcp, &target) {
                    tracing::debug!(error = %e, "bridge connection ended with an error");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "bridge could not start a connection thread");
        }
    }
}

/// Copies both ways until each side has closed its half.
fn forward(tcp: TcpStream, target: &Path) -> io::Result<()> {
    let unix = match UnixStream::connect(target) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, proxy = %target.display(), "bridge cannot reach the proxy socket");
            let _ = tcp.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let (mut tcp_r, mut unix_w) = (tcp.try_clone()?, unix.try_clone()?);
    let upstream = std::thread::Builder::new()
        .name("cordon-bridge-up".into())
        .spawn(move || {
            let r = io::copy(&mut tcp_r, &mut unix_w);
            let _ = unix_w.shutdown(Shutdown::Write);
            r
        })?;
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let down = io::copy(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(Shutdown::Write);
    let up = upstream
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("bridge thread panicked")));
    down.and(up).map(|_| ())
}
