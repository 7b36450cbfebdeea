//! Hot reload: watch the policy directory and swap in a new set when it changes.
//!
//! A set that fails to read, compile or pass its own tests is refused and the last good set
//! stays in force. Every attempt is reported to a callback, so the composition root can log it
//! and write the audit record (this crate does no I/O of its own beyond reading policies).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::config::PolicyConfig;
use crate::policy::{LoadOptions, Policy, PolicySet};

/// Changes closer together than this are one reload (editors write files in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The outcome of one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadEvent {
    /// Whether the new set is now in force.
    pub applied: bool,
    /// The id of the set in force after the attempt (`None` if none is loaded).
    pub policy: Option<String>,
    /// The id of the set in force before.
    pub previous: Option<String>,
    /// Why the new set was refused.
    pub error: Option<String>,
}

/// A watcher could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch policy path {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

/// Reload `path` into `policy` now. Used by the watcher, and by callers that reload on a
/// signal or an API call.
pub fn reload_now(
    policy: &Policy,
    path: &Path,
    config: &PolicyConfig,
    opts: &LoadOptions,
) -> ReloadEvent {
    let previous = policy.current().map(|s| s.id().to_owned());
    match PolicySet::load(path, config, opts) {
        Ok(set) => {
            let id = set.id().to_owned();
            if previous.as_deref() == Some(id.as_str()) {
                return ReloadEvent {
                    applied: false,
                    policy: previous.clone(),
                    previous,
                    error: None,
                };
            }
            policy.swap(set);
            tracing::info!(policy = %id, previous = ?previous, "policy set reloaded");
            ReloadEvent {
                applied: true,
                policy: Some(id),
                previous,
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, kept = ?previous, "policy reload refused; keeping the last good set");
            ReloadEvent {
                applied: false,
                policy: previous.clone(),
                previous,
                error: Some(e.to_string()),
            }
        }
    }
}

/// Watches a policy path and reloads on change until dropped.
pub struct Reloader {
    // Dropping the watcher closes the event channel, which ends the thread.
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Watch `path`; on each settled change, reload and report to `on_event`. An event whose
    /// set is identical to the one in force (same digest) is not reported.
    pub fn watch(
        policy: Arc<Policy>,
        path: PathBuf,
        config: PolicyConfig,
        opts: LoadOptions,
        on_event: impl Fn(ReloadEvent) + Send + 'static,
    ) -> Result<Self, WatchError> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !ev.kind.is_access()
            {
                let _ = tx.send(());
            }
        })
        .map_err(|source| WatchError {
            path: path.clone(),
            source,
        })?;
        watcher
            .watch(&path, RecursiveMode::Recursive)
            .map_err(|source| WatchError {
                path: path.clone(),
                source,
            })?;
        let thread = std::thread::Builder::new()
            .name("cordon-policy-reload".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Wait for the burst of writes to settle.
                    loop {
                        match rx.recv_timeout(DEBOUNCE) {
                            Ok(()) => continue,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    let event = reload_now(&policy, &path, &config, &opts);
                    if event.applied || event.error.is_some() {
                        on_event(event);
                    }
                }
            })
            .map_err(|e| WatchError {
                path: PathBuf::new(),
                source: notify::Error::io(e),
            })?;
        Ok(Reloader {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        drop(self.watcher.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
