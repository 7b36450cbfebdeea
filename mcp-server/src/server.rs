//! The MCP side: the tool list, and one pipeline every call goes through. The tools policy
//! decides first (on arguments with secrets redacted); the tool runs on a blocking thread (file
//! I/O, the sandbox); what it returns is scanned before it goes back to the model; one audit
//! record is written per call whatever happened. Tool failures are tool results with
//! `isError`, never protocol errors.

use std::sync::Arc;
use std::time::Instant;

use cordon_sandbox::Cancel;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::error::ToolError;
use crate::guard::{Guard, audit_findings, decision_record, tool_event};
use crate::workspace::{Registry, Workspace};
use crate::{files, git, output, shell};

/// How a tool behaves, for the annotations clients show and act on.
#[derive(Debug, Clone, Copy)]
struct Hints {
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool,
}

const READ: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
const ADD: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
const CHANGE: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: false,
};
const SET: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};
const NETWORK: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};
/// Commands can do anything the sandbox allows, network through the proxy included.
const RUN: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};

struct Def {
    name: &'static str,
    description: &'static str,
    schema: fn() -> Arc<JsonObject>,
    output: fn() -> Arc<JsonObject>,
    hints: Hints,
}

fn schema<T: schemars::JsonSchema + std::any::Any>() -> Arc<JsonObject> {
    let base = rmcp::handler::server::common::schema_for_type::<T>();
    let mut obj = (*base).clone();
    // Every tool takes the workspace to act in.
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.insert(
            "workspace".into(),
            json!({"type": "string", "description": "The workspace to act in (default: the first one)."}),
        );
    } else {
        obj.insert(
            "properties".into(),
            json!({"workspace": {"type": "string", "description": "The workspace to act in (default: the first one)."}}),
        );
    }
    obj.insert("type".into(), json!("object"));
    Arc::new(obj)
}

macro_rules! def {
    ($name:literal, $ty:ty, $out:ty, $hints:expr, $desc:literal) => {
        Def {
            name: $name,
            description: $desc,
            schema: schema::<$ty>,
            output: rmcp::handler::server::common::schema_for_output::<$out>,
            hints: $hints,
        }
    };
}

const TOOLS: &[Def] = &[
    def!(
        "read_file",
        files::ReadArgs,
        output::ReadOut,
        READ,
        "Read a text file, whole or by line range (1-based, inclusive), up to max_bytes; returns the content, the range returned and the file's total line count."
    ),
    def!(
        "read_many",
        files::ReadManyArgs,
        output::ReadManyOut,
        READ,
        "Read several text files at once; each entry succeeds or fails on its own."
    ),
    def!(
        "write_file",
        files::WriteArgs,
        output::WriteOut,
        SET,
        "Create or replace a file atomically (a reader never sees half of it); an existing file keeps its mode."
    ),
    def!(
        "edit_file",
        files::EditArgs,
        output::EditOut,
        CHANGE,
        "Apply exact text replacements to a file and return the unified diff. Each old_text must occur expected_count times (default 1). Refused if the file changed since you last read it. dry_run shows the diff without writing."
    ),
    def!(
        "list_dir",
        files::ListArgs,
        output::ListOut,
        READ,
        "List a directory to a depth, with types and sizes; files ignored by .gitignore and hidden files are left out unless all is set."
    ),
    def!(
        "tree",
        files::ListArgs,
        output::TreeOut,
        READ,
        "Draw a directory as an indented tree (default depth 3), .gitignore aware."
    ),
    def!(
        "find",
        files::FindArgs,
        output::FindOut,
        READ,
        "Find paths matching a glob (e.g. src/**/*.rs, or *.toml anywhere), .gitignore aware."
    ),
    def!(
        "grep",
        files::GrepArgs,
        output::GrepOut,
        READ,
        "Search file contents with a regular expression; matches come back with path and line number, paged by offset and limit."
    ),
    def!(
        "file_info",
        files::PathArgs,
        output::InfoOut,
        READ,
        "Type, size, mode, modification time and symlink target of a path."
    ),
    def!(
        "make_dir",
        files::PathArgs,
        output::PathOut,
        SET,
        "Create a directory and any missing parents."
    ),
    def!(
        "move_path",
        files::MoveArgs,
        output::MoveOut,
        CHANGE,
        "Move or rename a file or directory; the destination must not exist."
    ),
    def!(
        "copy_file",
        files::CopyArgs,
        output::CopyOut,
        ADD,
        "Copy a file, or with recursive a directory and everything in it; the destination must not exist."
    ),
    def!(
        "delete_path",
        files::DeleteArgs,
        output::PathOut,
        CHANGE,
        "Delete a file, an empty directory, or with recursive a whole directory."
    ),
    def!(
        "exec",
        shell::ExecArgs,
        output::ExecOut,
        RUN,
        "Run a command in the workspace's sandbox (argv without a shell, or command with sh -c) and return its exit status and output. Progress is reported while it runs; cancelling the call kills the whole process tree. A command still running after wait_secs (default and at most 50) goes on in the background, and the result gives its id for process_read."
    ),
    def!(
        "process_start",
        shell::ExecArgs,
        output::StartOut,
        RUN,
        "Start a command in the sandbox in the background and return its id at once; read its output with process_read."
    ),
    def!(
        "process_read",
        shell::ReadArgs,
        output::ProcessReadOut,
        READ,
        "Read a background process's output from a byte offset, and whether it is still running (with its exit status once it ended)."
    ),
    def!(
        "process_write",
        shell::WriteArgs,
        output::ProcessWriteOut,
        RUN,
        "Write text to a background process's standard input (and close it with close), for programs that read input as they run."
    ),
    def!(
        "process_kill",
        shell::KillArgs,
        output::KillOut,
        CHANGE,
        "Stop a background process: KILL (the default) ends it and everything it started; TERM, INT, HUP, QUIT, USR1 or USR2 is sent to its process group instead, for a clean shutdown or a reload."
    ),
    def!(
        "process_list",
        git::NoArgs,
        output::ProcessListOut,
        READ,
        "List the background processes of the workspace."
    ),
    def!(
        "git_status",
        git::NoArgs,
        output::GitOut,
        READ,
        "The branch and the changed files (git status --short --branch)."
    ),
    def!(
        "git_diff",
        git::DiffArgs,
        output::GitOut,
        READ,
        "Unstaged changes, staged changes (staged), or the working tree against a ref (against)."
    ),
    def!(
        "git_log",
        git::LogArgs,
        output::LogOut,
        READ,
        "Recent commits: hash, author, date and subject."
    ),
    def!(
        "git_show",
        git::ShowArgs,
        output::GitOut,
        READ,
        "A commit's message, stat and patch."
    ),
    def!(
        "git_branch",
        git::BranchArgs,
        output::GitOut,
        ADD,
        "List branches, or create one (create, start_point)."
    ),
    def!(
        "git_checkout",
        git::CheckoutArgs,
        output::GitOut,
        CHANGE,
        "Switch to a branch, or create and switch (create)."
    ),
    def!("git_add", git::AddArgs, output::GitOut, ADD, "Stage paths."),
    def!(
        "git_commit",
        git::CommitArgs,
        output::GitOut,
        ADD,
        "Commit the staged changes (hooks do not run); the git policy decides first."
    ),
    def!(
        "git_reset",
        git::ResetArgs,
        output::GitOut,
        CHANGE,
        "Unstage paths, or move the branch (soft, mixed or hard)."
    ),
    def!(
        "git_stash",
        git::StashArgs,
        output::GitOut,
        CHANGE,
        "Stash changes (push) or bring them back (pop, apply), list or drop."
    ),
    def!(
        "git_push",
        git::PushArgs,
        output::GitOut,
        NETWORK,
        "Push a branch through the egress proxy, never forced; the git policy decides first (protected branches, protected files such as CI)."
    ),
    def!(
        "git_fetch",
        git::FetchArgs,
        output::GitOut,
        NETWORK,
        "Fetch from a remote through the egress proxy."
    ),
    def!(
        "git_clone",
        git::CloneArgs,
        output::CloneOut,
        NETWORK,
        "Clone an http(s) repository through the egress proxy into a new directory of the workspace."
    ),
];

/// The MCP server: tools over named workspaces.
#[derive(Clone)]
pub struct CordonServer {
    registry: Arc<Registry>,
    guard: Guard,
}

impl std::fmt::Debug for CordonServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CordonServer")
            .field("workspaces", &self.registry.names())
            .finish()
    }
}

impl CordonServer {
    /// A server over `registry`'s workspaces, checking with `guard`.
    pub fn new(registry: Registry, guard: Guard) -> CordonServer {
        CordonServer {
            registry: Arc::new(registry),
            guard,
        }
    }

    /// The tool list, for clients and for tests of the list itself.
    pub fn tools() -> Vec<Tool> {
        TOOLS
            .iter()
            .map(|d| {
                Tool::new(d.name, d.description, (d.schema)())
                    .with_raw_output_schema((d.output)())
                    .with_annotations(
                        ToolAnnotations::new()
                            .read_only(d.hints.read_only)
                            .destructive(d.hints.destructive)
                            .idempotent(d.hints.idempotent)
                            .open_world(d.hints.open_world),
                    )
            })
            .collect()
    }

    async fn run(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let name = request.name.to_string();
        if !TOOLS.iter().any(|d| d.name == name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            ));
        }
        let mut args = request.arguments.unwrap_or_default();
        let ws_name = match args.remove("workspace") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Ok(error_result("workspace must be a string"));
            }
        };
        let args = Value::Object(args);
        let redacted = self.guard.redact_value(&args);
        let ws = match self.registry.get(ws_name.as_deref()) {
            Ok(ws) => ws,
            Err(e) => return Ok(error_result(&e.to_string())),
        };
        let decision = self.guard.tool(&ws.name, &name, &redacted);
        let event = tool_event(&name)
            .sandbox(ws.name.clone())
            .decision(decision_record(&decision))
            .detail("arguments", shorten(&redacted));
        if !decision.allow {
            let e = ToolError::Denied(if decision.reasons.is_empty() {
                "the tools policy denies it".into()
            } else {
                decision.reasons.join("; ")
            });
            return self.finish(event.outcome("denied"), started, Err(e), Vec::new());
        }

        let cancel = Cancel::new().map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let watcher = {
            let (ct, cancel) = (context.ct.clone(), cancel.clone());
            tokio::spawn(async move {
                ct.cancelled().await;
                cancel.cancel();
            })
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        if let Some(token) = context.meta.get_progress_token() {
            let peer = context.peer.clone();
            tokio::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    let note = ProgressNotificationParam::new(token.clone(), bytes as f64)
                        .with_message(format!("{bytes} bytes of output so far"));
                    let _ = peer.notify_progress(note).await;
                }
            });
        }
        let guard = self.guard.clone();
        let tool = name.clone();
        let registry = Arc::clone(&self.registry);
        let ws_name = ws.name.clone();
        let ran = tokio::task::spawn_blocking(move || {
            if tool == "git_clone" {
                return git::clone(&registry, args, cancel).map(|v| (v, None));
            }
            dispatch(&ws, &guard, &tool, args, cancel, &tx)
        })
        .await
        .unwrap_or_else(|e| Err(ToolError::Io(format!("the tool failed: {e}"))));
        watcher.abort();
        let (ran, outcome) = match ran {
            Ok((value, outcome)) => (Ok(value), outcome),
            Err(e) => (Err(e), None),
        };
        let event = match outcome {
            Some(o) => event.detail("exit", json!(o)),
            None => event,
        };
        let screened = ran.and_then(|value| {
            let text = strings(&value);
            let screened = self.guard.screen(&ws_name, &name, &text)?;
            let value = if screened.redact {
                self.guard.redact_value(&value)
            } else {
                value
            };
            Ok((value, screened))
        });
        match screened {
            Ok((value, screened)) => {
                let event = if screened.redact {
                    event.detail("redacted", json!(true))
                } else {
                    event
                };
                self.finish(event.outcome("ok"), started, Ok(value), screened.findings)
            }
            Err(e) => {
                let outcome = e.outcome();
                self.finish(event.outcome(outcome), started, Err(e), Vec::new())
            }
        }
    }

    /// Writes the call's record and turns the result into what the client gets.
    fn finish(
        &self,
        event: cordon_audit::Event,
        started: Instant,
        result: Result<Value, ToolError>,
        findings: Vec<cordon_secrets::Finding>,
    ) -> Result<CallToolResult, ErrorData> {
        let event = event
            .duration_ms(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
            .findings(audit_findings(&findings));
        // An error's text can quote what a program printed (git's stderr): it is redacted like
        // any result before the model or the log sees it.
        let message = result.as_ref().err().map(|e| {
            match self.guard.redact_value(&Value::String(e.to_string())) {
                Value::String(m) => m,
                _ => String::new(),
            }
        });
        let event = match &message {
            Some(m) => event.detail("error", json!(m)),
            None => event,
        };
        if let Err(e) = self.guard.record(event) {
            tracing::error!(error = %e, "cannot write a tool call's audit record");
            return Ok(error_result(&e.to_string()));
        }
        Ok(match (result, message) {
            (Ok(value), _) => CallToolResult::structured(value),
            (Err(_), Some(m)) => error_result(&m),
            (Err(e), None) => error_result(&e.to_string()),
        })
    }
}

/// A tool error the model reads.
fn error_result(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Every string in `value`, one per line: what the scanner reads (raw, not JSON-escaped, so a
/// multi-line key is seen as it is).
fn strings(value: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out
}

/// Arguments as the audit record keeps them: long strings (file contents) cut.
fn shorten(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() > 256 => {
            let head: String = s.chars().take(200).collect();
            Value::String(format!("{head}... [{} bytes]", s.len()))
        }
        Value::Array(a) => Value::Array(a.iter().map(shorten).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
        other => other.clone(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::Invalid(format!("bad arguments: {e}")))
}

type Ran = (Value, Option<cordon_sandbox::Outcome>);

/// Runs one tool on the blocking pool.
fn dispatch(
    ws: &Arc<Workspace>,
    guard: &Guard,
    tool: &str,
    args: Value,
    cancel: Cancel,
    progress: &tokio::sync::mpsc::UnboundedSender<u64>,
) -> Result<Ran, ToolError> {
    fn plain<T: serde::Serialize>(r: Result<T, ToolError>) -> Result<Ran, ToolError> {
        r.and_then(|t| {
            serde_json::to_value(t)
                .map(|v| (v, None))
                .map_err(|e| ToolError::Io(format!("cannot encode the result: {e}")))
        })
    }
    match tool {
        "read_file" => plain(files::read(ws, guard, parse(args)?)),
        "read_many" => plain(files::read_many(ws, guard, parse(args)?)),
        "write_file" => plain(files::write(ws, guard, parse(args)?)),
        "edit_file" => plain(files::edit(ws, guard, parse(args)?)),
        "list_dir" => plain(files::list(ws, guard, parse(args)?)),
        "tree" => plain(files::tree(ws, guard, parse(args)?)),
        "find" => plain(files::find(ws, guard, parse(args)?)),
        "grep" => plain(files::grep(ws, guard, parse(args)?)),
        "file_info" => plain(files::info(ws, guard, parse(args)?)),
        "make_dir" => plain(files::mkdir(ws, guard, parse(args)?)),
        "move_path" => plain(files::rename(ws, guard, parse(args)?)),
        "copy_file" => plain(files::copy(ws, guard, parse(args)?)),
        "delete_path" => plain(files::delete(ws, guard, parse(args)?)),
        "exec" => {
            let a: shell::ExecArgs = parse(args)?;
            // `exec` paces the reports (a few a second).
            let (out, outcome) = shell::exec(ws, &a, cancel, &mut |bytes| {
                let _ = progress.send(bytes);
            })?;
            plain(Ok(out)).map(|(v, _)| (v, outcome))
        }
        "process_start" => plain(shell::start(ws, &parse(args)?)),
        "process_read" => plain(shell::read(ws, &parse(args)?)),
        "process_kill" => plain(shell::kill(ws, &parse(args)?)),
        "process_write" => plain(shell::write(ws, &parse(args)?)),
        "process_list" => {
            let _: git::NoArgs = parse(args)?;
            plain(shell::list(ws))
        }
        t if t.starts_with("git_") => git::call(ws, guard, t, args, cancel).map(|v| (v, None)),
        other => Err(ToolError::NotFound(format!("no tool {other}"))),
    }
}

impl ServerHandler for CordonServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("cordon", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "cordon: file, shell and git tools on sandboxed workspaces. Paths are relative to \
                 the workspace root. Every call is decided by policy, commands run in a sandbox \
                 whose only network is an egress proxy, and secrets are redacted from results.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(CordonServer::tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run(request, context).await.map(CallToolResponse::from)
    }
}
