//! git over smart HTTP through the proxy: `git http-backend` behind Python's CGI server on
//! loopback, real `git clone` and `git push`.

use cordon_testkit::{GitServer, git};

use super::harness::*;

#[test]
fn git_clone_and_push_through_the_proxy() {
    let srv = GitServer::empty();
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
    let log = git(&srv.bare(), &["log", "--format=%s", "feature"]);
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
    let log = git(&srv.bare(), &["log", "--format=%s", "feature"]);
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
