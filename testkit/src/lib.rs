//! Servers the integration tests of several crates share. Test code: it panics on setup
//! failures, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `git http-backend` behind Python's CGI server on 127.0.0.1, serving the bare repository
/// `repo.git` under `root` at `http://HOST:port/cgi-bin/git/repo.git`, pushes allowed.
pub struct GitServer {
    /// The loopback port.
    pub port: u16,
    /// Holds `repo.git`.
    pub root: tempfile::TempDir,
    child: Child,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CGI: &str = r#"
import http.server, os, sys
os.chdir(sys.argv[1])
os.environ["GIT_PROJECT_ROOT"] = sys.argv[1]
os.environ["GIT_HTTP_EXPORT_ALL"] = "1"
# As root, the CGI handler would switch to nobody, who cannot write the repository.
http.server.nobody_uid = os.getuid
class H(http.server.CGIHTTPRequestHandler):
    cgi_directories = ["/cgi-bin"]
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Runs git with a fixed identity and no proxy from the environment (panics if git cannot
/// start; the caller checks the status).
pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap()
}

impl GitServer {
    /// A server for an empty bare repository.
    pub fn empty() -> GitServer {
        GitServer::seeded(|_| {})
    }

    /// A server for a bare repository cloned from the commit `seed` makes in an empty work
    /// tree (on `main`); with a `seed` that writes nothing, the repository is empty.
    pub fn seeded(seed: impl FnOnce(&Path)) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let bare = root.path().join("repo.git");
        let work = root.path().join("seed");
        std::fs::create_dir_all(&work).unwrap();
        seed(&work);
        let seeded = std::fs::read_dir(&work).unwrap().next().is_some();
        if seeded {
            assert!(git(&work, &["init", "-q"]).status.success());
            assert!(git(&work, &["add", "."]).status.success());
            assert!(git(&work, &["commit", "-qm", "seed"]).status.success());
            let out = git(
                root.path(),
                &[
                    "clone",
                    "-q",
                    "--bare",
                    work.to_str().unwrap(),
                    bare.to_str().unwrap(),
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert!(
                git(
                    root.path(),
                    &["init", "--bare", "-q", bare.to_str().unwrap()]
                )
                .status
                .success()
            );
        }
        assert!(
            git(&bare, &["config", "http.receivepack", "true"])
                .status
                .success()
        );
        let cgi = root.path().join("cgi-bin");
        std::fs::create_dir(&cgi).unwrap();
        std::os::unix::fs::symlink("/usr/lib/git-core/git-http-backend", cgi.join("git")).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", CGI, root.path().to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        GitServer {
            port: line.trim().parse().unwrap(),
            root,
            child,
        }
    }

    /// The bare repository.
    pub fn bare(&self) -> std::path::PathBuf {
        self.root.path().join("repo.git")
    }
}

/// Reads an HTTP message head (through the blank line) one byte at a time, so nothing after
/// it is consumed: the bytes that follow belong to a tunnel or a body the caller reads next.
pub fn read_head(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        r.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    head
}
