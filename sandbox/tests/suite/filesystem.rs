//! Attacks on the filesystem boundary: writes outside the workspace, link escapes, and every
//! way of changing a protected path.

use super::harness::*;

fn unique(tag: &str) -> String {
    format!(
        "cordon-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn blocks_writes_outside_the_workspace() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let name = unique("outside");
    let script = format!(
        "for d in / /etc /usr /usr/bin /opt /dev /proc /run /var; do \
           if echo x > $d/{name} 2>/dev/null; then echo WROTE $d; fi; \
           if mkdir $d/{name}.d 2>/dev/null; then echo MADE $d; fi; \
         done; echo done"
    );
    let (r, _) = audited(&sb, &script);
    r.ok();
    assert_eq!(r.stdout.trim(), "done", "{}", r.stdout);
    for d in ["/", "/etc", "/usr", "/usr/bin", "/opt", "/var"] {
        assert!(!std::path::Path::new(d).join(&name).exists());
    }
    // /tmp is private and writable; nothing of it reaches the host's /tmp.
    let r = sh(&sb, &format!("echo x > /tmp/{name} && cat /tmp/{name}"));
    r.ok();
    assert!(!std::path::Path::new("/tmp").join(&name).exists());
}

#[test]
fn blocks_symlink_escapes() {
    let ws = Ws::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "host secret\n").unwrap();
    // Links planted in the workspace (by an earlier run or a cloned repository).
    std::os::unix::fs::symlink(&secret, ws.join("abs-link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", ws.join("up-link")).unwrap();
    let sb = ws.sandbox();
    let host_dir = outside.path().display().to_string();
    let script = format!(
        "cat abs-link 2>/dev/null && echo READ1; \
         echo evil > abs-link 2>/dev/null && echo WROTE1; \
         ls dir-link/ 2>/dev/null && echo READ2; \
         echo evil > dir-link/new 2>/dev/null && echo WROTE2; \
         ls up-link{host_dir} 2>/dev/null && echo READ3; \
         ln -s {host_dir}/secret.txt mine && cat mine 2>/dev/null && echo READ4; \
         echo done"
    );
    let (r, _) = audited(&sb, &script);
    assert!(
        !r.stdout.contains("READ") && !r.stdout.contains("WROTE"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
    assert!(!outside.path().join("new").exists());
}

#[test]
fn blocks_hard_link_escapes() {
    let ws = Ws::new();
    ws.write(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n");
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "ln /etc/passwd pw 2>/dev/null && echo LINKED1; \
         ln /usr/bin/env env 2>/dev/null && echo LINKED2; \
         ln .git/hooks/pre-commit hook 2>/dev/null && echo LINKED3; \
         echo done",
    );
    assert!(!r.stdout.contains("LINKED"), "{}", r.stdout);
    assert!(!ws.join("pw").exists() && !ws.join("hook").exists());
}

fn ci_workspace() -> Ws {
    let ws = Ws::new();
    ws.write(".github/workflows/ci.yml", "on: push\n");
    ws.write(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n");
    ws.write(".git/config", "[core]\n\tbare = false\n");
    ws.write(".git/HEAD", "ref: refs/heads/main\n");
    ws.write("src/main.rs", "fn main() {}\n");
    ws
}

fn unchanged(ws: &Ws) {
    assert_eq!(
        std::fs::read_to_string(ws.join(".github/workflows/ci.yml")).unwrap(),
        "on: push\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/hooks/pre-commit")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/config")).unwrap(),
        "[core]\n\tbare = false\n"
    );
    let workflows: Vec<_> = std::fs::read_dir(ws.join(".github/workflows"))
        .unwrap()
        .collect();
    assert_eq!(workflows.len(), 1);
    let hooks: Vec<_> = std::fs::read_dir(ws.join(".git/hooks")).unwrap().collect();
    assert_eq!(hooks.len(), 1);
}

#[test]
fn blocks_ci_files_and_git_hooks_written_directly() {
    let ws = ci_workspace();
    let sb = ws.sandbox();
    let (r, event) = audited(
        &sb,
        "echo evil >> .github/workflows/ci.yml 2>/dev/null && echo W1; \
         echo evil > .github/workflows/new.yml 2>/dev/null && echo W2; \
         rm -f .github/workflows/ci.yml 2>/dev/null; test -e .github/workflows/ci.yml || echo W3; \
         echo evil > .git/hooks/pre-commit 2>/dev/null && echo W4; \
         echo evil > .git/hooks/post-checkout 2>/dev/null && echo W5; \
         chmod 777 .git/hooks/pre-commit 2>/dev/null && echo W6; \
         echo '[core] hooksPath = /tmp' >> .git/config 2>/dev/null && echo W7; \
         truncate -s 0 .git/config 2>/dev/null && echo W8; \
         echo ok > src/main.rs && echo SRC; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    assert!(
        r.stdout.contains("SRC"),
        "the rest of the workspace stays writable: {}",
        r.stdout
    );
    unchanged(&ws);
    assert!(
        event["detail"]["isolation"]["protected_mounts"]
            .as_u64()
            .unwrap()
            >= 3,
        "{event}"
    );
}

#[test]
fn blocks_protected_paths_in_a_nested_repository() {
    let ws = ci_workspace();
    ws.write("vendor/lib/.git/hooks/pre-push", "#!/bin/sh\n");
    ws.write("vendor/lib/.git/config", "[core]\n");
    ws.write("vendor/lib/.github/workflows/release.yml", "on: tag\n");
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "cd vendor/lib; \
         echo evil > .git/hooks/pre-push 2>/dev/null && echo W1; \
         echo evil > .git/hooks/post-merge 2>/dev/null && echo W2; \
         echo evil >> .git/config 2>/dev/null && echo W3; \
         echo evil > .github/workflows/release.yml 2>/dev/null && echo W4; \
         cd /workspace; mkdir -p deep/new/repo/.github/workflows && echo evil > deep/new/repo/.github/workflows/x.yml 2>/dev/null && echo W5; \
         mkdir -p deep/x/.git/hooks && echo evil > deep/x/.git/hooks/pre-commit 2>/dev/null && echo W6; \
         echo evil > deep/x/.git/config 2>/dev/null && echo W7; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(ws.join("vendor/lib/.git/hooks/pre-push")).unwrap(),
        "#!/bin/sh\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("vendor/lib/.git/config")).unwrap(),
        "[core]\n"
    );
    assert!(!ws.join("vendor/lib/.git/hooks/post-merge").exists());
    assert!(!ws.join("deep/new/repo/.github/workflows/x.yml").exists());
    assert!(!ws.join("deep/x/.git/hooks/pre-commit").exists());
    assert!(!ws.join("deep/x/.git/config").exists());
    assert!(r.outcome.protected_denials >= 3, "{:?}", r.outcome);
}

#[test]
fn blocks_protected_paths_that_do_not_exist_yet() {
    let ws = Ws::new();
    ws.write("README.md", "hello\n");
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "echo evil > .gitlab-ci.yml 2>/dev/null && echo W1; \
         echo evil > sub/Jenkinsfile 2>/dev/null; mkdir sub; echo evil > sub/Jenkinsfile 2>/dev/null && echo W2; \
         mkdir -p .github/workflows 2>/dev/null; echo evil > .github/workflows/x.yml 2>/dev/null && echo W3; \
         ln -s .gitlab-ci.yml pointer; echo evil > pointer 2>/dev/null && echo W4; \
         python3 -c 'import os; os.open(\".gitlab-ci.yml\", os.O_CREAT|os.O_WRONLY, 0o644)' 2>/dev/null && echo W5; \
         touch .github/ok.md && echo HOLDER_DIR_OK; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    assert!(r.stdout.contains("HOLDER_DIR_OK"), "{}", r.stdout);
    assert!(!ws.join(".gitlab-ci.yml").exists());
    assert!(!ws.join("sub/Jenkinsfile").exists());
    assert!(!ws.join(".github/workflows/x.yml").exists());
}

#[test]
fn blocks_rename_into_protected_paths() {
    let ws = ci_workspace();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "echo evil > x.yml; mv x.yml .github/workflows/x.yml 2>/dev/null && echo W1; \
         mv -T x.yml .github/workflows/ci.yml 2>/dev/null && echo W2; \
         echo evil > hook; mv hook .git/hooks/post-checkout 2>/dev/null && echo W3; \
         mkdir -p staged/workflows && echo evil > staged/workflows/a.yml; \
         mv staged/workflows .github/workflows 2>/dev/null && echo W4; \
         mkdir -p other/.github-new/workflows && echo evil > other/.github-new/workflows/a.yml; \
         mv other/.github-new other/.github 2>/dev/null && echo W5; \
         echo evil > ci.tmp; mv ci.tmp .gitlab-ci.yml 2>/dev/null && echo W6; \
         python3 -c 'import os; os.rename(\"ci.tmp2\", \".gitlab-ci.yml\")' 2>/dev/null && echo W7; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    unchanged(&ws);
    assert!(!ws.join("other/.github").exists());
    assert!(!ws.join(".gitlab-ci.yml").exists());
}

#[test]
fn blocks_renaming_a_parent_aside_and_recreating_it() {
    let ws = ci_workspace();
    ws.write("vendor/lib/.git/hooks/pre-push", "#!/bin/sh\n");
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "mv .github .github-old 2>/dev/null && echo W1; \
         mkdir -p .github/workflows && echo evil > .github/workflows/ci.yml 2>/dev/null && echo W2; \
         mv .git .git-old 2>/dev/null && echo W3; \
         mv .git/hooks .git/hooks-old 2>/dev/null && echo W4; \
         mv vendor/lib/.git vendor/lib/git-old 2>/dev/null && echo W5; \
         python3 -c 'import os; os.rename(\".github\", \"gh\")' 2>/dev/null && echo W6; \
         mv /workspace /tmp/ws 2>/dev/null && echo W7; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    unchanged(&ws);
    assert!(ws.join("vendor/lib/.git/hooks/pre-push").exists());
    assert!(!ws.join(".github-old").exists() && !ws.join(".git-old").exists());
}

#[test]
fn blocks_writes_to_worktree_gitdir_config() {
    let ws = ci_workspace();
    ws.write(".git/worktrees/feature/config.worktree", "[core]\n");
    ws.write(".git/worktrees/feature/HEAD", "ref: refs/heads/feature\n");
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "echo evil >> .git/worktrees/feature/config.worktree 2>/dev/null && echo W1; \
         echo evil > .git/worktrees/other/config.worktree 2>/dev/null; \
         mkdir -p .git/worktrees/other && echo evil > .git/worktrees/other/config.worktree 2>/dev/null && echo W2; \
         echo done",
    );
    assert!(!r.stdout.contains('W'), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/worktrees/feature/config.worktree")).unwrap(),
        "[core]\n"
    );
    assert!(!ws.join(".git/worktrees/other/config.worktree").exists());
}

#[test]
fn created_names_behave_as_the_kernel_would() {
    // Calls that create names are performed by the supervisor; what the command sees must not
    // change: redirections to devices and its own descriptors, the umask, ownership, directory
    // descriptors, FIFOs.
    let ws = ci_workspace();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        "echo to-null > /dev/null && echo to-stderr > /dev/stderr && echo to-fd1 > /dev/fd/1 && \
         echo to-self > /proc/self/fd/1 && \
         umask 027 && mkdir d && touch f && ln -s f l && ln f hard && mv f g && \
         stat -c '%a %U %n' d g l && \
         python3 -c 'import os; fd = os.open(\"d\", os.O_RDONLY); os.mkdir(\"sub\", dir_fd=fd); \
os.close(os.open(\"made\", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd)); print(sorted(os.listdir(\"d\")))' && \
         mkfifo p && timeout 5 sh -c 'echo x > p' 2>/dev/null; echo fifo=$? && \
         mkdir d 2>/dev/null; echo again=$? && echo done",
    );
    r.ok();
    let out = &r.stdout;
    for line in [
        "to-fd1",
        "to-self",
        "750 cordon d",
        "640 cordon g",
        "['made', 'sub']",
        "again=1",
        "done",
    ] {
        assert!(out.contains(line), "{line}: {out}\n{}", r.stderr);
    }
    assert!(r.stderr.contains("to-stderr"), "{}", r.stderr);
    // A writer with no reader gets an error at once instead of stalling every other call.
    assert!(!out.contains("fifo=124"), "{out}");
    assert!(ws.join("d/sub").is_dir() && ws.join("d/made").is_file() && ws.join("hard").is_file());
}

#[test]
fn blocks_a_racing_thread_swapping_the_path() {
    // One thread keeps creating "ok.yml" while another rewrites the same buffer to name a
    // protected file: the supervisor reads the path once and acts on what it checked.
    let ws = Ws::new();
    let sb = ws.sandbox();
    let script = r#"
import ctypes, os, threading, time
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(64)
buf.value = b"ok.yml"
stop = time.time() + 1.5
def flip():
    while time.time() < stop:
        ctypes.memmove(buf, b".gitlab-ci.yml\0", 15)
        ctypes.memmove(buf, b"ok.yml\0", 7)
t = threading.Thread(target=flip); t.start()
n = 0
while time.time() < stop:
    fd = libc.open(buf, os.O_CREAT | os.O_WRONLY, 0o644)
    if fd >= 0:
        os.close(fd)
    n += 1
t.join()
print("calls", n)
"#;
    let (r, _) = audited(&sb, &format!("python3 -c '{script}'"));
    r.ok();
    assert!(r.stdout.contains("calls"), "{}", r.stderr);
    assert!(
        !ws.join(".gitlab-ci.yml").exists(),
        "the race created a protected file"
    );
    assert!(ws.join("ok.yml").exists());
}
