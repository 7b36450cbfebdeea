//! git over smart HTTP through the proxy: `git http-backend` behind Python's CGI server on
//! loopback, real `git clone` and `git push`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::harness::*;

struct GitServer {
    port: u16,
    child: Child,
    root: tempfile::TempDir,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
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

fn server() -> GitServer {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo.git");
    let out = git(
        root.path(),
        &["init", "--bare", "-q", repo.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert!(
        git(&repo, &["config", "http.receivepack", "true"])
            .status
            .success()
    );
    let cgi = root.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    std::os::unix::fs::symlink("/usr/lib/git-core/git-http-backend", cgi.join("git")).unwrap();
    let script = r#"
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
    let mut child = Command::new("python3")
        .args(["-c", script, root.path().to_str().unwrap()])
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
        child,
        root,
    }
}

#[test]
fn git_clone_and_push_through_the_proxy() {
    let srv = server();
    let p = proxy(&["git.test"], &[("git.test", "127.0.0.1")]);
    let proxy_url = format!("http://127.0.0.1:{}", p.port);
    let url = format!("http://git.test:{}/cgi-bin/git/repo.git", srv.port);
    let work = tempfile::tempdir().unwrap();
    let out = git(
        work.path(),
        &[
            "-c",
            &format!("http.proxy={proxy_url}"),
            "clone",
            "-q",
            &url,
            "clone",
        ],
    );
    assert!(
        out.status.success(),
        "clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clone = work.path().join("clone");
    std::fs::write(clone.join("README.md"), "hello through cordon\n").unwrap();
    assert!(git(&clone, &["add", "README.md"]).status.success());
    assert!(
        git(&clone, &["commit", "-q", "-m", "first"])
            .status
            .success()
    );
    let push = |refspec: &str| {
        git(
            &clone,
            &[
                "-c",
                &format!("http.proxy={proxy_url}"),
                "push",
                "-q",
                "origin",
                refspec,
            ],
        )
    };
    // The default git policy protects main: the push is refused before the pack leaves.
    let out = push("HEAD:main");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = p
        .records()
        .into_iter()
        .rev()
        .find(|r| r["action"] == "push")
        .unwrap();
    assert_eq!(refused["detail"]["ref"], "refs/heads/main");
    assert_eq!(refused["decision"]["allow"], false);
    // A feature branch is allowed.
    let out = push("HEAD:refs/heads/feature");
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = git(
        &srv.root.path().join("repo.git"),
        &["log", "--format=%s", "feature"],
    );
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "first");
    // A committed secret is found inside the pack's zlib streams and the push is blocked.
    std::fs::write(
        clone.join("deploy.env"),
        "GITHUB_TOKEN=ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK\n",
    )
    .unwrap();
    assert!(git(&clone, &["add", "deploy.env"]).status.success());
    assert!(
        git(&clone, &["commit", "-q", "-m", "oops"])
            .status
            .success()
    );
    let out = push("HEAD:refs/heads/feature");
    assert!(!out.status.success(), "a push with a secret went through");
    let blocked = p.last();
    assert_eq!(blocked["outcome"], "blocked", "{blocked}");
    assert_eq!(blocked["findings"][0]["rule"], "github-pat");
    let log = git(
        &srv.root.path().join("repo.git"),
        &["log", "--format=%s", "feature"],
    );
    assert_eq!(
        String::from_utf8_lossy(&log.stdout).trim(),
        "first",
        "the server got the secret commit"
    );
    // Every request went through policy and has a record.
    let recs = p.records();
    assert!(
        recs.iter()
            .any(|r| r["outcome"] == "200" && r["detail"]["method"] == "POST"),
        "{recs:?}"
    );
    // A remote that policy does not allow is refused, and nothing reaches the server.
    let out = git(
        work.path(),
        &[
            "-c",
            &format!("http.proxy={proxy_url}"),
            "clone",
            "-q",
            &format!("http://elsewhere.test:{}/cgi-bin/git/repo.git", srv.port),
            "other",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
