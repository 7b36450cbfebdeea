//! Cgroup limits for one run: memory and process count for the whole tree, which rlimits
//! (per process, per uid) cannot give.
//!
//! cgroup v2 is used where the host delegates the `memory` and `pids` controllers to cordon's
//! own cgroup; otherwise the v1 `memory` and `pids` hierarchies where they are mounted and
//! writable (this is common in containers and CI machines); otherwise nothing, and the run falls
//! back to rlimits, which the outcome says.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Which cgroup interface bounded a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V2,
    V1,
}

/// The cgroups one run was placed in; removed on drop.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    pub version: Version,
    /// One directory (v2) or one per controller (v1: memory, pids).
    memory: PathBuf,
    pids: PathBuf,
}

/// What the cgroup saw during the run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub memory_hit: bool,
    pub pids_hit: bool,
    pub memory_peak: Option<u64>,
}

struct Mount {
    root: String,
    point: PathBuf,
    fstype: String,
    options: String,
}

fn mounts() -> Vec<Mount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let root = l.nth(3)?.to_owned();
            let point = PathBuf::from(l.next()?);
            let mut r = right.split(' ');
            let fstype = r.next()?.to_owned();
            let options = r.nth(1).unwrap_or_default().to_owned();
            Some(Mount {
                root,
                point,
                fstype,
                options,
            })
        })
        .collect()
}

/// This process's cgroup path in the hierarchy named `key` ("" for v2, "memory", "pids").
fn own_path(key: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let hit = if key.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == key)
        };
        hit.then(|| path.to_owned())
    })
}

fn join(mount: &Mount, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    mount.point.join(rel)
}

fn unique_name() -> String {
    format!(
        "cordon-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

fn v2_dir() -> Option<PathBuf> {
    let mount = mounts().into_iter().find(|m| m.fstype == "cgroup2")?;
    let dir = join(&mount, &own_path("")?);
    let controllers = fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !(has("memory") && has("pids")) {
        return None;
    }
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
    let on = |c: &str| enabled.split_whitespace().any(|x| x == c);
    if !(on("memory") && on("pids")) {
        // Fails when the cgroup has processes of its own and is not the root (the "no internal
        // processes" rule); then v2 is not usable from here.
        write(&dir.join("cgroup.subtree_control"), "+memory +pids").ok()?;
    }
    Some(dir)
}

fn v1_dir(controller: &str) -> Option<PathBuf> {
    let mount = mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))?;
    Some(join(&mount, &own_path(controller)?))
}

/// Whether (and how) this host lets cordon bound a run's memory and process count.
pub(crate) fn available() -> Option<Version> {
    if v2_dir().is_some() {
        return Some(Version::V2);
    }
    let writable = |d: Option<PathBuf>| {
        d.is_some_and(|d| {
            let probe = d.join(unique_name());
            let ok = fs::create_dir(&probe).is_ok();
            let _ = fs::remove_dir(&probe);
            ok
        })
    };
    (writable(v1_dir("memory")) && writable(v1_dir("pids"))).then_some(Version::V1)
}

impl RunCgroup {
    /// Creates and configures the run's cgroup(s); `None` when the host offers none.
    pub(crate) fn create(memory_bytes: u64, pids: u64) -> Option<RunCgroup> {
        let name = unique_name();
        if let Some(dir) = v2_dir() {
            let dir = dir.join(&name);
            fs::create_dir(&dir).ok()?;
            let cg = RunCgroup {
                version: Version::V2,
                memory: dir.clone(),
                pids: dir.clone(),
            };
            let ok = write(&dir.join("memory.max"), &memory_bytes.to_string()).is_ok()
                && write(&dir.join("pids.max"), &pids.to_string()).is_ok();
            let _ = write(&dir.join("memory.swap.max"), "0");
            return ok.then_some(cg);
        }
        let memory = v1_dir("memory")?.join(&name);
        let pid_dir = v1_dir("pids")?.join(&name);
        fs::create_dir(&memory).ok()?;
        if fs::create_dir(&pid_dir).is_err() {
            let _ = fs::remove_dir(&memory);
            return None;
        }
        let cg = RunCgroup {
            version: Version::V1,
            memory,
            pids: pid_dir,
        };
        let ok = write(
            &cg.memory.join("memory.limit_in_bytes"),
            &memory_bytes.to_string(),
        )
        .is_ok()
            && write(&cg.pids.join("pids.max"), &pids.to_string()).is_ok();
        // Without swap accounting the limit still holds for RAM; with it, close the swap escape.
        let _ = write(
            &cg.memory.join("memory.memsw.limit_in_bytes"),
            &memory_bytes.to_string(),
        );
        ok.then_some(cg)
    }

    /// Moves `pid` into the run's cgroup(s), before it runs anything.
    pub(crate) fn add(&self, pid: u32) -> io::Result<()> {
        let pid = pid.to_string();
        write(&self.memory.join("cgroup.procs"), &pid)?;
        if self.pids != self.memory {
            write(&self.pids.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// Reads whether the limits were reached.
    pub(crate) fn usage(&self) -> Usage {
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let counter = |text: &str, key: &str| {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let pids_events = read(self.pids.join("pids.events"));
        let pids_hit = counter(&pids_events, "max") > 0;
        match self.version {
            Version::V2 => {
                let events = read(self.memory.join("memory.events"));
                Usage {
                    memory_hit: counter(&events, "max") > 0 || counter(&events, "oom_kill") > 0,
                    pids_hit,
                    memory_peak: read(self.memory.join("memory.peak")).trim().parse().ok(),
                }
            }
            Version::V1 => {
                let failcnt: u64 = read(self.memory.join("memory.failcnt"))
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let oom = counter(&read(self.memory.join("memory.oom_control")), "oom_kill");
                Usage {
                    memory_hit: failcnt > 0 || oom > 0,
                    pids_hit,
                    memory_peak: read(self.memory.join("memory.max_usage_in_bytes"))
                        .trim()
                        .parse()
                        .ok(),
                }
            }
        }
    }

    /// Kills anything left in the cgroup (nothing, normally: the pid namespace died with its
    /// init) and removes it.
    fn remove(&self) {
        for dir in [&self.memory, &self.pids] {
            if !dir.exists() {
                continue;
            }
            if self.version == Version::V2 {
                let _ = write(&dir.join("cgroup.kill"), "1");
            } else {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: signalling a pid read from our own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}
