//! Turns a [`SandboxConfig`] and a [`Command`] into the child's [`ChildPlan`]: every path,
//! string and pointer the child will use, built here where allocation is safe.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::SandboxError;
use crate::child::Step;
use crate::config::{Command, SandboxConfig, WORKSPACE};
use crate::stage::Stage;

/// The PATH inside the sandbox.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
const NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
const NODEV: u64 = libc::MOUNT_ATTR_NODEV;

/// Host system entries shown read-only at the same path.
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];
/// Host files hidden behind an empty file: credentials and privilege configuration.
const MASKED_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/security/opasswd",
    "/etc/machine-id",
];
/// Host directories hidden behind an empty directory.
const MASKED_DIRS: &[&str] = &["/etc/sudoers.d", "/etc/ssl/private"];

pub(crate) fn cstr(bytes: impl AsRef<[u8]>, what: &str) -> Result<CString, SandboxError> {
    CString::new(bytes.as_ref().to_vec())
        .map_err(|_| SandboxError::Invalid(format!("{what} contains a NUL byte")))
}

fn path_c(p: &Path) -> Result<CString, SandboxError> {
    cstr(p.as_os_str().as_bytes(), "path")
}

/// A workspace-relative path with no `..`, no root and no prefix.
pub(crate) fn relative(path: &Path, what: &str) -> Result<PathBuf, SandboxError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(SandboxError::Invalid(format!(
                    "{what} {} must be relative to the workspace, without '..'",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Steps that build the root under `root` (a host path) before `pivot_root`.
pub(crate) struct RootBuilder {
    root: PathBuf,
    pub steps: Vec<Step>,
    pub what: Vec<String>,
}

impl RootBuilder {
    pub(crate) fn new(root: PathBuf) -> Self {
        RootBuilder {
            root,
            steps: Vec::new(),
            what: Vec::new(),
        }
    }

    fn inside(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    fn push(&mut self, step: Step, what: String) {
        self.steps.push(step);
        self.what.push(what);
    }

    pub(crate) fn mkdir(&mut self, p: &Path) -> Result<(), SandboxError> {
        let dst = self.inside(p);
        self.push(
            Step::Mkdir(path_c(&dst)?),
            format!("creating {}", p.display()),
        );
        Ok(())
    }

    /// Creates `p` and every missing ancestor (mkdir tolerates EEXIST).
    pub(crate) fn mkdir_all(&mut self, p: &Path) -> Result<(), SandboxError> {
        let mut acc = PathBuf::from("/");
        for c in p.components().skip(1) {
            acc.push(c);
            self.mkdir(&acc)?;
        }
        Ok(())
    }

    pub(crate) fn touch(&mut self, p: &Path) -> Result<(), SandboxError> {
        let dst = self.inside(p);
        self.push(
            Step::Touch(path_c(&dst)?),
            format!("creating {}", p.display()),
        );
        Ok(())
    }

    pub(crate) fn symlink(&mut self, target: &Path, p: &Path) -> Result<(), SandboxError> {
        let link = self.inside(p);
        self.push(
            Step::Symlink {
                target: path_c(target)?,
                link: path_c(&link)?,
            },
            format!("linking {} to {}", p.display(), target.display()),
        );
        Ok(())
    }

    pub(crate) fn mount(
        &mut self,
        fstype: &str,
        p: &Path,
        flags: libc::c_ulong,
        data: &str,
    ) -> Result<(), SandboxError> {
        let dst = self.inside(p);
        self.push(
            Step::Mount {
                src: Some(cstr(fstype, "fstype")?),
                dst: path_c(&dst)?,
                fstype: Some(cstr(fstype, "fstype")?),
                flags,
                data: Some(cstr(data, "mount options")?),
            },
            format!("mounting a new {fstype} at {}", p.display()),
        );
        Ok(())
    }

    /// Bind-mounts host `src` at `p` inside and adds `attrs` (recursively).
    pub(crate) fn bind(&mut self, src: &Path, p: &Path, attrs: u64) -> Result<(), SandboxError> {
        let dst = self.inside(p);
        let ro = if attrs & RDONLY != 0 {
            " read-only"
        } else {
            ""
        };
        self.push(
            Step::Mount {
                src: Some(path_c(src)?),
                dst: path_c(&dst)?,
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            },
            format!("mounting {} at {}{ro}", src.display(), p.display()),
        );
        if attrs != 0 {
            self.push(
                Step::SetAttr {
                    path: path_c(&dst)?,
                    set: attrs,
                    recursive: true,
                },
                format!("making {}{ro} nosuid", p.display()),
            );
        }
        Ok(())
    }
}

/// Host facts that shape every plan.
#[derive(Debug, Clone)]
pub(crate) struct HostFacts {
    pub uid: u32,
    pub gid: u32,
    pub cap_last: i32,
}

impl HostFacts {
    pub(crate) fn read() -> HostFacts {
        // SAFETY: no arguments, cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63);
        HostFacts { uid, gid, cap_last }
    }
}

/// The filesystem steps for one run.
pub(crate) fn root_steps(
    config: &SandboxConfig,
    workspace: &Path,
    stage: &Stage,
    protected: &[PathBuf],
) -> Result<RootBuilder, SandboxError> {
    let mut b = RootBuilder::new(stage.root());
    let root = stage.root();
    b.push(
        Step::Mount {
            src: Some(cstr("tmpfs", "")?),
            dst: path_c(&root)?,
            fstype: Some(cstr("tmpfs", "")?),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: Some(cstr("mode=0755,size=1m", "")?),
        },
        "mounting the new root".into(),
    );
    for entry in SYSTEM {
        let host = Path::new(entry);
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(host)
                .map_err(|e| SandboxError::host(format!("reading {entry}"), e))?;
            b.symlink(&target, host)?;
        } else if meta.is_dir() {
            b.mkdir(host)?;
            b.bind(host, host, RDONLY | NOSUID | NODEV)?;
        }
    }
    for extra in &config.read_only_paths {
        let meta = extra.metadata().map_err(|e| {
            SandboxError::Invalid(format!("read-only path {}: {e}", extra.display()))
        })?;
        if !extra.is_absolute() {
            return Err(SandboxError::Invalid(format!(
                "read-only path {} must be absolute",
                extra.display()
            )));
        }
        if meta.is_dir() {
            b.mkdir_all(extra)?;
        } else {
            if let Some(parent) = extra.parent() {
                b.mkdir_all(parent)?;
            }
            b.touch(extra)?;
        }
        b.bind(extra, extra, RDONLY | NOSUID | NODEV)?;
    }

    // A private /dev with the harmless nodes, a new devpts instance and shared memory.
    let dev = Path::new("/dev");
    b.mkdir(dev)?;
    b.mount("tmpfs", dev, libc::MS_NOSUID, "mode=0755,size=64k")?;
    for node in crate::config::DEVICE_NODES {
        let host = Path::new(node);
        if host.exists() {
            b.touch(host)?;
            b.bind(host, host, NOSUID)?;
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        b.symlink(Path::new(target), &dev.join(name))?;
    }
    b.mkdir(&dev.join("pts"))?;
    b.mount(
        "devpts",
        &dev.join("pts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )?;
    b.mkdir(&dev.join("shm"))?;
    b.mount(
        "tmpfs",
        &dev.join("shm"),
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777,size=64m",
    )?;

    b.mkdir(Path::new("/proc"))?;
    b.mount(
        "proc",
        Path::new("/proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    b.mkdir(Path::new("/tmp"))?;
    b.mount(
        "tmpfs",
        Path::new("/tmp"),
        libc::MS_NOSUID | libc::MS_NODEV,
        &format!("mode=1777,size={}", config.limits.tmp_bytes.max(4096)),
    )?;

    let ws = Path::new(WORKSPACE);
    b.mkdir(ws)?;
    b.bind(workspace, ws, NOSUID | NODEV)?;
    for rel in protected {
        b.bind(&workspace.join(rel), &ws.join(rel), RDONLY | NOSUID | NODEV)?;
    }

    // Credentials and privilege configuration of the host stay hidden; the sandbox user has
    // its own passwd and group, and no resolver is configured (names are the proxy's business).
    if Path::new("/etc").is_dir() {
        for file in MASKED_FILES {
            let p = Path::new(file);
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                b.bind(&stage.file("empty"), p, RDONLY | NOSUID | NODEV)?;
            }
        }
        for dir in MASKED_DIRS {
            let p = Path::new(dir);
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                b.bind(&stage.file("emptydir"), p, RDONLY | NOSUID | NODEV)?;
            }
        }
        if let Ok(entries) = std::fs::read_dir("/etc/ssh") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("ssh_host_") && !name.ends_with(".pub") {
                    b.bind(&stage.file("empty"), &entry.path(), RDONLY | NOSUID | NODEV)?;
                }
            }
        }
        for (file, src) in [
            ("/etc/passwd", "passwd"),
            ("/etc/group", "group"),
            ("/etc/hosts", "hosts"),
            ("/etc/hostname", "hostname"),
            ("/etc/resolv.conf", "empty"),
        ] {
            let p = Path::new(file);
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                b.bind(&stage.file(src), p, RDONLY | NOSUID | NODEV)?;
            }
        }
    }
    if let Some(ca) = &config.ca_file {
        let run = Path::new("/run/cordon");
        b.mkdir_all(run)?;
        b.touch(&run.join("ca.pem"))?;
        b.bind(ca, &run.join("ca.pem"), RDONLY | NOSUID | NODEV)?;
    }
    Ok(b)
}

/// Steps after `pivot_root`: the root and `/dev` become read-only.
pub(crate) fn late_steps() -> Result<(Vec<Step>, Vec<String>), SandboxError> {
    Ok((
        vec![
            Step::SetAttr {
                path: cstr("/", "")?,
                set: RDONLY,
                recursive: false,
            },
            Step::SetAttr {
                path: cstr("/dev", "")?,
                set: RDONLY,
                recursive: false,
            },
        ],
        vec![
            "making the new root read-only".into(),
            "making /dev read-only".into(),
        ],
    ))
}

/// Where the CA bundle appears inside the sandbox.
pub const CA_PATH: &str = "/run/cordon/ca.pem";

/// The environment: a fixed base, the pass-through allowlist, configured and per-run variables,
/// then the proxy and CA variables, which nothing may override.
pub(crate) fn environment(
    config: &SandboxConfig,
    cmd: &Command,
    cwd: &Path,
) -> Result<BTreeMap<String, String>, SandboxError> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("PATH", SANDBOX_PATH.into());
    set("HOME", "/tmp".into());
    set("TMPDIR", "/tmp".into());
    set("USER", "cordon".into());
    set("LOGNAME", "cordon".into());
    set("SHELL", "/bin/sh".into());
    set("PWD", cwd.display().to_string());
    set("CORDON_SANDBOX", config.name.clone());
    for name in &config.pass_env {
        if let Ok(v) = std::env::var(name) {
            set(name, v);
        }
    }
    for (k, v) in config.env.iter().chain(&cmd.env) {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(SandboxError::Invalid(format!(
                "environment variable name {k:?} is empty or contains '=' or NUL"
            )));
        }
        set(k, v.clone());
    }
    if config.proxy_socket.is_some() {
        let url = format!("http://127.0.0.1:{}", config.bridge_port);
        for k in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            set(k, url.clone());
        }
        for k in ["NO_PROXY", "no_proxy"] {
            set(k, "localhost,127.0.0.1,::1".into());
        }
    }
    if config.ca_file.is_some() {
        for k in [
            "SSL_CERT_FILE",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "CARGO_HTTP_CAINFO",
            "CURL_CA_BUNDLE",
        ] {
            set(k, CA_PATH.into());
        }
    }
    Ok(env)
}

/// Where execve looks: argv[0] itself when it has a slash, else each PATH directory.
pub(crate) fn exec_candidates(
    program: &OsStr,
    env: &BTreeMap<String, String>,
) -> Result<Vec<CString>, SandboxError> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err(SandboxError::Invalid("the program name is empty".into()));
    }
    if bytes.contains(&b'/') {
        return Ok(vec![cstr(bytes, "program")?]);
    }
    let path = env.get("PATH").map_or(SANDBOX_PATH, String::as_str);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| {
            let mut full = d.as_bytes().to_vec();
            full.push(b'/');
            full.extend_from_slice(bytes);
            cstr(full, "program")
        })
        .collect()
}

/// The command message the parent sends a ready sandbox (see `child::receive_command`).
pub(crate) fn message(
    cwd: &Path,
    candidates: &[CString],
    cmd: &Command,
    env: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SandboxError> {
    let argv = cmd
        .argv
        .iter()
        .map(|a| cstr(a.as_bytes(), "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}"), "an environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = path_c(cwd)?;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_ne_bytes();
    let mut body = Vec::new();
    body.extend_from_slice(&count(candidates.len()));
    body.extend_from_slice(&count(argv.len()));
    body.extend_from_slice(&count(envp.len()));
    for s in std::iter::once(&cwd)
        .chain(candidates)
        .chain(&argv)
        .chain(&envp)
    {
        body.extend_from_slice(s.as_bytes_with_nul());
    }
    if body.len() > crate::child::MAX_MESSAGE {
        return Err(SandboxError::Invalid(format!(
            "the command line and environment take {} bytes; the sandbox accepts {}",
            body.len(),
            crate::child::MAX_MESSAGE
        )));
    }
    let mut msg = count(body.len()).to_vec();
    msg.extend_from_slice(&body);
    Ok(msg)
}
