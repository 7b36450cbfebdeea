//! The git tools. git runs inside the workspace's sandbox (a repository's own config, filters
//! and attributes are the agent's to write, so they must not run on the host), with hooks off,
//! no pager or editor, command-running config keys emptied, and no option taken from an
//! argument: refs are validated, paths come after `--`. Commits and pushes go to the `git`
//! policy first; pushes and fetches leave through the egress proxy.

use cordon_policy::input::{GitInput, GitOp};
use cordon_sandbox::{Cancel, Command, Exit};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{CloneOut, Commit, GitOut, LogOut};
use crate::paths::normalise;
use crate::workspace::{Registry, Workspace};

/// Config that would run a program or talk to a terminal, neutralised on every call.
const SAFE_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.sshCommand=false",
    "core.editor=true",
    "core.pager=cat",
    "sequence.editor=true",
    "diff.external=",
    "credential.helper=",
    "protocol.ext.allow=never",
    "uploadpack.packObjectsHook=",
    "gc.auto=0",
    "advice.detachedHead=false",
];

/// Who commits when the repository says nothing.
const AUTHOR: (&str, &str) = ("cordon agent", "agent@cordon.invalid");

/// Runs `git args` in the sandbox; a non-zero exit is an error with git's message.
fn git(ws: &Workspace, args: &[String], cancel: Option<Cancel>) -> Result<String, ToolError> {
    git_in(&ws.sandbox, args, cancel)
}

/// [`git`] in any sandbox.
fn git_in(
    sandbox: &cordon_sandbox::Sandbox,
    args: &[String],
    cancel: Option<Cancel>,
) -> Result<String, ToolError> {
    let mut argv: Vec<String> = vec!["git".into(), "--no-pager".into()];
    for c in SAFE_CONFIG {
        argv.push("-c".into());
        argv.push((*c).into());
    }
    argv.extend(args.iter().cloned());
    let mut cmd = Command::new(argv)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", AUTHOR.0)
        .env("GIT_AUTHOR_EMAIL", AUTHOR.1)
        .env("GIT_COMMITTER_NAME", AUTHOR.0)
        .env("GIT_COMMITTER_EMAIL", AUTHOR.1)
        .timeout(std::time::Duration::from_secs(300));
    cmd.actor = Some("mcp".into());
    if let Some(c) = cancel {
        cmd = cmd.cancel(c);
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = sandbox.run(&cmd, &mut |stream, bytes| match stream {
        cordon_sandbox::Stream::Stdout => out.extend_from_slice(bytes),
        cordon_sandbox::Stream::Stderr => err.extend_from_slice(bytes),
    })?;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    match outcome.exit {
        Exit::Code(0) => Ok(stdout),
        _ if outcome.timed_out => Err(ToolError::Io("git timed out".into())),
        _ if outcome.cancelled => Err(ToolError::Io("git was cancelled".into())),
        _ => {
            let msg = String::from_utf8_lossy(&err).trim().to_owned();
            Err(ToolError::Invalid(format!(
                "git {} failed: {}",
                args.first().map_or("", String::as_str),
                if msg.is_empty() {
                    stdout.trim().to_owned()
                } else {
                    msg
                }
            )))
        }
    }
}

/// A ref, branch or revision expression: never an option, only the characters refs and
/// revision suffixes use.
fn revision(r: &str) -> Result<String, ToolError> {
    let ok = !r.is_empty()
        && !r.starts_with('-')
        && r.len() <= 256
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/~^@{}-".contains(c));
    if ok {
        Ok(r.to_owned())
    } else {
        Err(ToolError::Invalid(format!(
            "{r:?} is not a valid ref or revision"
        )))
    }
}

/// A new branch name (git's own rules, checked by git in the sandbox as well).
fn branch_name(b: &str) -> Result<String, ToolError> {
    let b = revision(b)?;
    if b.contains("..")
        || b.contains("@{")
        || b.ends_with('/')
        || b.ends_with(".lock")
        || b.contains('~')
        || b.contains('^')
    {
        return Err(ToolError::Invalid(format!(
            "{b:?} is not a valid branch name"
        )));
    }
    Ok(b)
}

/// A remote name.
fn remote_name(r: &str) -> Result<String, ToolError> {
    if !r.is_empty()
        && !r.starts_with('-')
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Ok(r.to_owned())
    } else {
        Err(ToolError::Invalid(format!(
            "{r:?} is not a valid remote name"
        )))
    }
}

fn paths_after_dashes(args: &mut Vec<String>, paths: &[String]) -> Result<(), ToolError> {
    args.push("--".into());
    for p in paths {
        let rel = normalise(p)?;
        args.push(if rel.is_empty() { ".".into() } else { rel });
    }
    Ok(())
}

/// No arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `git_diff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// Show staged changes (index against HEAD) instead of unstaged ones.
    #[serde(default)]
    pub staged: bool,
    /// Compare the working tree against this ref instead.
    pub against: Option<String>,
    /// Limit to these paths.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `git_log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogArgs {
    /// How many commits (default 20, at most 500).
    pub max_count: Option<u32>,
    /// Start from this ref (default HEAD).
    pub rev: Option<String>,
    /// Only commits touching these paths.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `git_show`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowArgs {
    /// The commit, tag or `rev:path` is not accepted: a revision only.
    pub rev: String,
}

/// `git_branch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchArgs {
    /// Create this branch (list branches when absent).
    pub create: Option<String>,
    /// Where the new branch starts (default HEAD).
    pub start_point: Option<String>,
}

/// `git_checkout`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutArgs {
    /// The branch (or revision) to switch to.
    pub branch: String,
    /// Create it first.
    #[serde(default)]
    pub create: bool,
}

/// `git_add`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    /// Paths to stage (`.` for everything).
    pub paths: Vec<String>,
}

/// `git_commit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitArgs {
    /// The commit message.
    pub message: String,
}

/// `git_reset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetArgs {
    /// Unstage these paths (keeping the working tree). Without paths, the branch moves.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Where the branch moves to (default HEAD).
    pub rev: Option<String>,
    /// `soft`, `mixed` (default) or `hard` (discards working-tree changes).
    pub mode: Option<String>,
}

/// `git_stash`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StashArgs {
    /// `push` (default), `pop`, `apply`, `list` or `drop`.
    pub action: Option<String>,
    /// A message for `push`.
    pub message: Option<String>,
}

/// `git_push`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushArgs {
    /// The remote (default `origin`).
    pub remote: Option<String>,
    /// The branch to push (default: the current one). Never forced.
    pub branch: Option<String>,
}

/// `git_fetch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchArgs {
    /// The remote (default `origin`).
    pub remote: Option<String>,
}

/// `git_clone`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneArgs {
    /// An http(s) URL; it is fetched through the egress proxy.
    pub url: String,
    /// The new workspace's name; later calls pass it as `workspace`.
    pub name: String,
    /// A new branch to create and check out in the new workspace, so that each task works on
    /// its own branch from the start (e.g. `task/fix-login`). Omitted: the remote's default
    /// branch.
    #[serde(default)]
    pub branch: Option<String>,
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ToolError> {
    serde_json::from_value(v).map_err(|e| ToolError::Invalid(format!("bad arguments: {e}")))
}

fn out(text: String) -> Value {
    to_value(GitOut { output: text })
}

/// A result as structured content.
fn to_value<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Runs one git tool by name.
pub fn call(
    ws: &Workspace,
    guard: &Guard,
    tool: &str,
    args: Value,
    cancel: Cancel,
) -> Result<Value, ToolError> {
    let c = Some(cancel);
    match tool {
        "git_status" => {
            let _: NoArgs = from(args)?;
            git(
                ws,
                &["status".into(), "--branch".into(), "--short".into()],
                c,
            )
            .map(out)
        }
        "git_diff" => {
            let a: DiffArgs = from(args)?;
            let mut v = vec!["diff".into(), "--no-ext-diff".into(), "--no-color".into()];
            if a.staged {
                v.push("--cached".into());
            }
            if let Some(r) = &a.against {
                v.push(revision(r)?);
            }
            paths_after_dashes(&mut v, &a.paths)?;
            git(ws, &v, c).map(out)
        }
        "git_log" => {
            let a: LogArgs = from(args)?;
            let n = a.max_count.unwrap_or(20).clamp(1, 500);
            let mut v = vec![
                "log".into(),
                format!("--max-count={n}"),
                "--format=%H%x09%an%x09%aI%x09%s".into(),
            ];
            if let Some(r) = &a.rev {
                v.push(revision(r)?);
            }
            paths_after_dashes(&mut v, &a.paths)?;
            let text = git(ws, &v, c)?;
            let commits: Vec<Commit> = text
                .lines()
                .filter_map(|l| {
                    let mut f = l.splitn(4, '\t');
                    Some(Commit {
                        commit: f.next()?.to_owned(),
                        author: f.next()?.to_owned(),
                        date: f.next()?.to_owned(),
                        subject: f.next()?.to_owned(),
                    })
                })
                .collect();
            Ok(to_value(LogOut { commits }))
        }
        "git_show" => {
            let a: ShowArgs = from(args)?;
            git(
                ws,
                &[
                    "show".into(),
                    "--no-ext-diff".into(),
                    "--stat".into(),
                    "--patch".into(),
                    revision(&a.rev)?,
                    "--".into(),
                ],
                c,
            )
            .map(out)
        }
        "git_branch" => {
            let a: BranchArgs = from(args)?;
            match a.create {
                Some(b) => {
                    let mut v = vec!["branch".into(), "--".into(), branch_name(&b)?];
                    if let Some(s) = &a.start_point {
                        v.push(revision(s)?);
                    }
                    git(ws, &v, c).map(out)
                }
                None => git(
                    ws,
                    &[
                        "branch".into(),
                        "--list".into(),
                        "--all".into(),
                        "--no-color".into(),
                    ],
                    c,
                )
                .map(out),
            }
        }
        "git_checkout" => {
            let a: CheckoutArgs = from(args)?;
            let v = if a.create {
                vec!["switch".into(), "--create".into(), branch_name(&a.branch)?]
            } else {
                vec!["switch".into(), "--no-guess".into(), revision(&a.branch)?]
            };
            git(ws, &v, c).map(out)
        }
        "git_add" => {
            let a: AddArgs = from(args)?;
            if a.paths.is_empty() {
                return Err(ToolError::Invalid(
                    "name the paths to add (\".\" for all)".into(),
                ));
            }
            let mut v = vec!["add".into()];
            paths_after_dashes(&mut v, &a.paths)?;
            git(ws, &v, c).map(out)
        }
        "git_commit" => {
            let a: CommitArgs = from(args)?;
            if a.message.trim().is_empty() {
                return Err(ToolError::Invalid("the commit message is empty".into()));
            }
            let changed = git(
                ws,
                &[
                    "diff".into(),
                    "--cached".into(),
                    "--name-only".into(),
                    "-z".into(),
                ],
                c.clone(),
            )?;
            let branch = current_branch(ws, c.clone())?;
            guard.git(
                &ws.name,
                GitInput {
                    operation: GitOp::Commit,
                    branch,
                    remote: None,
                    force: false,
                    changed_paths: changed
                        .split('\0')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    range: None,
                },
            )?;
            git(
                ws,
                &[
                    "commit".into(),
                    "--no-verify".into(),
                    "--no-gpg-sign".into(),
                    "-m".into(),
                    a.message,
                ],
                c,
            )
            .map(out)
        }
        "git_reset" => {
            let a: ResetArgs = from(args)?;
            if !a.paths.is_empty() {
                let mut v = vec!["reset".into(), "--quiet".into()];
                paths_after_dashes(&mut v, &a.paths)?;
                return git(ws, &v, c).map(out);
            }
            let mode = match a.mode.as_deref().unwrap_or("mixed") {
                m @ ("soft" | "mixed" | "hard") => format!("--{m}"),
                other => return Err(ToolError::Invalid(format!("unknown reset mode {other:?}"))),
            };
            let mut v = vec!["reset".into(), mode];
            if let Some(r) = &a.rev {
                v.push(revision(r)?);
            }
            v.push("--".into());
            git(ws, &v, c).map(out)
        }
        "git_stash" => {
            let a: StashArgs = from(args)?;
            let mut v = vec!["stash".into()];
            match a.action.as_deref().unwrap_or("push") {
                "push" => {
                    v.push("push".into());
                    if let Some(m) = a.message {
                        v.push("--message".into());
                        v.push(m);
                    }
                }
                act @ ("pop" | "apply" | "list" | "drop") => v.push(act.into()),
                other => {
                    return Err(ToolError::Invalid(format!(
                        "unknown stash action {other:?}"
                    )));
                }
            }
            git(ws, &v, c).map(out)
        }
        "git_push" => {
            let a: PushArgs = from(args)?;
            let remote = remote_name(a.remote.as_deref().unwrap_or("origin"))?;
            let branch = match a.branch {
                Some(b) => branch_name(&b)?,
                None => current_branch(ws, c.clone())?,
            };
            // What the push would add to the remote: every commit not on it yet.
            let changed = git(
                ws,
                &[
                    "log".into(),
                    "--name-only".into(),
                    "--format=".into(),
                    "-z".into(),
                    format!("refs/heads/{branch}"),
                    "--not".into(),
                    format!("--remotes={remote}"),
                    "--".into(),
                ],
                c.clone(),
            )?;
            let mut paths: Vec<String> = changed
                .split(['\0', '\n'])
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            paths.sort();
            paths.dedup();
            let url = git(
                ws,
                &[
                    "remote".into(),
                    "get-url".into(),
                    "--".into(),
                    remote.clone(),
                ],
                c.clone(),
            )?;
            guard.git(
                &ws.name,
                GitInput {
                    operation: GitOp::Push,
                    branch: branch.clone(),
                    remote: Some(url.trim().to_owned()),
                    force: false,
                    changed_paths: paths,
                    range: None,
                },
            )?;
            git(
                ws,
                &[
                    "push".into(),
                    "--no-verify".into(),
                    "--porcelain".into(),
                    "--".into(),
                    remote,
                    format!("refs/heads/{branch}:refs/heads/{branch}"),
                ],
                c,
            )
            .map(out)
        }
        "git_fetch" => {
            let a: FetchArgs = from(args)?;
            let remote = remote_name(a.remote.as_deref().unwrap_or("origin"))?;
            git(
                ws,
                &[
                    "fetch".into(),
                    "--no-recurse-submodules".into(),
                    "--".into(),
                    remote,
                ],
                c,
            )
            .map(out)
        }
        other => Err(ToolError::NotFound(format!("no git tool {other}"))),
    }
}

fn current_branch(ws: &Workspace, c: Option<Cancel>) -> Result<String, ToolError> {
    let b = git(
        ws,
        &[
            "symbolic-ref".into(),
            "--quiet".into(),
            "--short".into(),
            "HEAD".into(),
        ],
        c,
    )
    .map_err(|_| ToolError::Invalid("HEAD is detached: name the branch".into()))?;
    Ok(b.trim().to_owned())
}

/// `git_clone`: a new workspace, filled by a clone that runs in a sandbox of its own.
pub fn clone(registry: &Registry, args: Value, cancel: Cancel) -> Result<Value, ToolError> {
    let a: CloneArgs = from(args)?;
    if !(a.url.starts_with("https://") || a.url.starts_with("http://")) || a.url.len() > 2048 {
        return Err(ToolError::Invalid(
            "only http(s) URLs are cloned (through the egress proxy)".into(),
        ));
    }
    let branch = a.branch.as_deref().map(branch_name).transpose()?;
    let (dir, filling, normal) = registry.prepare(&a.name)?;
    let cloned = cordon_sandbox::Sandbox::new(filling)
        .map_err(ToolError::from)
        .and_then(|sandbox| {
            git_in(
                &sandbox,
                &[
                    "clone".into(),
                    "--no-recurse-submodules".into(),
                    // No template: no sample hooks in .git/hooks.
                    "--template=".into(),
                    "--".into(),
                    a.url.clone(),
                    ".".into(),
                ],
                Some(cancel.clone()),
            )?;
            match &branch {
                Some(b) => git_in(
                    &sandbox,
                    &["switch".into(), "--create".into(), b.clone()],
                    Some(cancel),
                ),
                None => Ok(String::new()),
            }
        });
    let ws = cloned.and_then(|_| Workspace::new(&a.name, normal));
    match ws {
        Ok(ws) => {
            registry.insert(ws);
            Ok(to_value(CloneOut {
                workspace: a.name,
                url: a.url,
                branch,
            }))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}
