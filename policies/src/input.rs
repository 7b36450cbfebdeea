//! Typed inputs for each decision point.
//!
//! Security teams write Rego against these shapes, so they are flat, documented in
//! `policies/README.md`, and changed only with care. Every input is normalised here before a
//! policy sees it (lower-case hosts without trailing dots, canonical IP spellings, lexically
//! normalised workspace paths), so a policy never has to defend against spelling tricks itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::area::Area;

/// Who is asking: fields every input carries besides the area's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The sandbox (workspace) the operation belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The agent, user or component on whose behalf it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// When a network decision is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A CONNECT or a new upstream connection: host, port and resolved ips are known.
    Connect,
    /// An HTTP request the proxy can see: method, path and headers are known too.
    Request,
    /// Before the proxy resolves a name: only the host is known.
    Dns,
}

/// Input of the `network` area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInput {
    /// When the decision is asked.
    pub phase: Phase,
    /// The destination name (or IP literal), lower-case, no trailing dot, no brackets.
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// Every address the name resolved to (and the literal itself when the host is one).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// `http` or `https`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The HTTP method, upper-case, for request-phase decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request path (with query), for request-phase decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Request headers, names lower-case, repeated values joined with `, `.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl NetworkInput {
    /// A connect-phase input for `host:port` with the addresses it resolved to.
    pub fn connect(host: &str, port: u16, ips: Vec<IpAddr>) -> Self {
        NetworkInput {
            phase: Phase::Connect,
            host: host.to_owned(),
            port,
            ips,
            scheme: None,
            method: None,
            path: None,
            headers: BTreeMap::new(),
        }
    }

    fn normalise(&mut self) -> Result<(), InputError> {
        let host = self.host.trim().trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map(str::to_owned)
            .unwrap_or(host);
        if host.is_empty() {
            return Err(InputError::Invalid(
                "network input needs a non-empty host".into(),
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !self.ips.contains(&ip) {
                self.ips.push(ip);
            }
            self.host = ip.to_string();
        } else {
            self.host = host;
        }
        self.scheme = self.scheme.take().map(|s| s.to_ascii_lowercase());
        self.method = self.method.take().map(|m| m.to_ascii_uppercase());
        self.headers = std::mem::take(&mut self.headers)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Ok(())
    }
}

/// Where content with secret findings is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A request leaving through the egress proxy.
    Egress,
    /// A tool result going back to the model.
    ToolOutput,
    /// A file the agent writes.
    FileWrite,
    /// Commits pushed to a remote.
    GitPush,
}

/// One finding as the policy sees it: never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingInput {
    /// The scanner rule that matched.
    pub rule: String,
    /// A keyed, irreversible fingerprint of the secret.
    pub fingerprint: String,
    /// Where it was found (header name, body, file path and line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Shannon entropy of the match, when the rule measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
}

/// Input of the `secrets` area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretsInput {
    /// Where the content is going.
    pub channel: Channel,
    /// The destination (host for egress, tool name for output, path for writes, remote for pushes).
    #[serde(default)]
    pub destination: String,
    /// What the scanner found.
    #[serde(default)]
    pub findings: Vec<FindingInput>,
}

/// A file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOp {
    /// Read a file's content.
    Read,
    /// List a directory or stat a path.
    List,
    /// Create or overwrite a file.
    Write,
    /// Create a directory.
    Mkdir,
    /// Delete a file or directory.
    Delete,
    /// Move `path` to `to`.
    Rename,
}

impl FileOp {
    /// Whether the operation changes the workspace.
    pub fn is_write(self) -> bool {
        !matches!(self, FileOp::Read | FileOp::List)
    }
}

/// Input of the `files` area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesInput {
    /// The operation.
    pub operation: FileOp,
    /// The path, relative to the workspace root, `/`-separated, lexically normalised. When the
    /// path leaves the workspace it is kept as given (normalised) and `in_workspace` is false.
    pub path: String,
    /// The destination of a rename, normalised the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Whether `path` (and `to`) stay inside the workspace. Computed, never taken from the caller.
    #[serde(default, skip_deserializing)]
    pub in_workspace: bool,
    /// Whether the operation changes anything. Computed from `operation`.
    #[serde(default, skip_deserializing)]
    pub write: bool,
}

impl FilesInput {
    /// An input for `operation` on `path`, relative to the workspace root.
    pub fn new(operation: FileOp, path: &str) -> Self {
        FilesInput {
            operation,
            path: path.to_owned(),
            to: None,
            in_workspace: false,
            write: operation.is_write(),
        }
    }

    fn normalise(&mut self) -> Result<(), InputError> {
        let (path, inside) = normalise_workspace_path(&self.path)?;
        self.path = path;
        self.in_workspace = inside;
        if let Some(to) = self.to.take() {
            let (to, to_inside) = normalise_workspace_path(&to)?;
            self.to = Some(to);
            self.in_workspace &= to_inside;
        } else if self.operation == FileOp::Rename {
            return Err(InputError::Invalid("a rename needs a \"to\" path".into()));
        }
        self.write = self.operation.is_write();
        Ok(())
    }
}

/// Lexically normalise a workspace-relative path: `.` segments and empty segments go, `..` pops
/// one segment. Returns the normalised path and whether it stays inside the workspace. No file
/// system access: symlinks are the sandbox's and the file tools' business, not the policy's.
pub fn normalise_workspace_path(raw: &str) -> Result<(String, bool), InputError> {
    if raw.is_empty() {
        return Err(InputError::Invalid("empty path".into()));
    }
    if raw.contains('\0') {
        return Err(InputError::Invalid("path contains a NUL byte".into()));
    }
    let path = Path::new(raw);
    let mut parts: Vec<String> = Vec::new();
    let mut inside = !path.is_absolute();
    for comp in path.components() {
        match comp {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    inside = false;
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let joined = parts.join("/");
    if inside {
        Ok((
            if joined.is_empty() {
                ".".to_owned()
            } else {
                joined
            },
            true,
        ))
    } else {
        Ok((format!("/{joined}"), false))
    }
}

/// Input of the `tools` area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolsInput {
    /// The MCP tool name.
    pub tool: String,
    /// Its arguments as the client sent them (secrets already redacted by the caller).
    #[serde(default)]
    pub arguments: Value,
}

/// A git operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitOp {
    /// A local commit.
    Commit,
    /// A push to a remote.
    Push,
}

/// A commit range `from..to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRange {
    /// The old tip (all zeros for a new branch).
    pub from: String,
    /// The new tip.
    pub to: String,
}

/// Input of the `git` area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitInput {
    /// Commit or push.
    pub operation: GitOp,
    /// The branch committed to or pushed (short name, no `refs/heads/`).
    #[serde(default)]
    pub branch: String,
    /// The remote URL or name, for pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Whether the push rewrites history.
    #[serde(default)]
    pub force: bool,
    /// Paths changed by the commit or by the pushed range, workspace-relative.
    #[serde(default)]
    pub changed_paths: Vec<String>,
    /// The commits concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<CommitRange>,
}

impl GitInput {
    fn normalise(&mut self) -> Result<(), InputError> {
        if let Some(b) = self.branch.strip_prefix("refs/heads/") {
            self.branch = b.to_owned();
        }
        for p in &mut self.changed_paths {
            *p = normalise_workspace_path(p)?.0;
        }
        Ok(())
    }
}

/// The input of any area, with its context: what [`crate::Policy::decide`] takes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AreaInput {
    /// See [`NetworkInput`].
    Network(NetworkInput),
    /// See [`SecretsInput`].
    Secrets(SecretsInput),
    /// See [`FilesInput`].
    Files(FilesInput),
    /// See [`ToolsInput`].
    Tools(ToolsInput),
    /// See [`GitInput`].
    Git(GitInput),
}

/// An input that cannot be given to a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The JSON does not have the area's input shape.
    #[error("input does not match the {area} input shape: {source}")]
    Shape {
        /// The area whose shape was expected.
        area: Area,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A key the area's input does not have (a typo would otherwise be silently ignored).
    #[error("unknown key {key:?} in {area} input")]
    UnknownKey {
        /// The area.
        area: Area,
        /// The key.
        key: String,
    },
    /// A value that passes the shape but makes no sense.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl AreaInput {
    /// The area this input is for.
    pub fn area(&self) -> Area {
        match self {
            AreaInput::Network(_) => Area::Network,
            AreaInput::Secrets(_) => Area::Secrets,
            AreaInput::Files(_) => Area::Files,
            AreaInput::Tools(_) => Area::Tools,
            AreaInput::Git(_) => Area::Git,
        }
    }

    /// A short description of what the input acts on, for audit records and logs: never
    /// content, headers or arguments.
    pub fn target(&self) -> String {
        match self {
            AreaInput::Network(n) => format!("{}:{}", n.host, n.port),
            AreaInput::Secrets(s) => {
                let channel = serde_json::to_value(s.channel)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{channel} {}", s.destination)
            }
            AreaInput::Files(f) => f.path.clone(),
            AreaInput::Tools(t) => t.tool.clone(),
            AreaInput::Git(g) => format!("{:?} {}", g.operation, g.branch).to_lowercase(),
        }
    }

    /// Parse and normalise a JSON input for `area`, with `sandbox` and `actor` beside the area's
    /// own keys. Unknown keys are refused.
    pub fn from_json(area: Area, value: Value) -> Result<(Context, AreaInput), InputError> {
        let Value::Object(mut obj) = value else {
            return Err(InputError::Invalid(format!(
                "{area} input must be a JSON object"
            )));
        };
        let ctx = Context {
            sandbox: take_string(&mut obj, "sandbox")?,
            actor: take_string(&mut obj, "actor")?,
        };
        // Computed fields are never taken from the caller.
        if area == Area::Files {
            obj.remove("in_workspace");
            obj.remove("write");
        }
        let keys: Vec<String> = obj.keys().cloned().collect();
        let value = Value::Object(obj);
        let shape = |source| InputError::Shape { area, source };
        let mut input = match area {
            Area::Network => AreaInput::Network(serde_json::from_value(value).map_err(shape)?),
            Area::Secrets => AreaInput::Secrets(serde_json::from_value(value).map_err(shape)?),
            Area::Files => AreaInput::Files(serde_json::from_value(value).map_err(shape)?),
            Area::Tools => AreaInput::Tools(serde_json::from_value(value).map_err(shape)?),
            Area::Git => AreaInput::Git(serde_json::from_value(value).map_err(shape)?),
        };
        input.normalise()?;
        let known = input.to_value(&Context::default())?;
        for key in keys {
            if known.get(&key).is_none() && !optional_key(area, &key) {
                return Err(InputError::UnknownKey { area, key });
            }
        }
        Ok((ctx, input))
    }

    /// Normalise in place (done by [`crate::Policy::decide`] before every evaluation).
    pub fn normalise(&mut self) -> Result<(), InputError> {
        match self {
            AreaInput::Network(n) => n.normalise(),
            AreaInput::Files(f) => f.normalise(),
            AreaInput::Git(g) => g.normalise(),
            AreaInput::Secrets(_) | AreaInput::Tools(_) => Ok(()),
        }
    }

    /// The JSON object a policy sees as `input`.
    pub fn to_value(&self, ctx: &Context) -> Result<Value, InputError> {
        let value = match self {
            AreaInput::Network(i) => serde_json::to_value(i),
            AreaInput::Secrets(i) => serde_json::to_value(i),
            AreaInput::Files(i) => serde_json::to_value(i),
            AreaInput::Tools(i) => serde_json::to_value(i),
            AreaInput::Git(i) => serde_json::to_value(i),
        }
        .map_err(|e| InputError::Invalid(format!("input does not serialise: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(InputError::Invalid(
                "input must serialise to an object".into(),
            ));
        };
        if let Some(s) = &ctx.sandbox {
            obj.insert("sandbox".into(), Value::String(s.clone()));
        }
        if let Some(a) = &ctx.actor {
            obj.insert("actor".into(), Value::String(a.clone()));
        }
        Ok(Value::Object(obj))
    }
}

/// Keys that are part of an area's shape but skipped when empty on serialisation.
fn optional_key(area: Area, key: &str) -> bool {
    match area {
        Area::Network => matches!(key, "scheme" | "method" | "path"),
        Area::Files => key == "to",
        Area::Git => matches!(key, "remote" | "range"),
        Area::Secrets | Area::Tools => false,
    }
}

fn take_string(
    obj: &mut serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, InputError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(InputError::Invalid(format!("\"{key}\" must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_host_is_normalised_and_literal_added_to_ips() {
        let (_, input) = AreaInput::from_json(
            Area::Network,
            json!({"phase": "connect", "host": "[::FFFF:127.0.0.1].", "port": 443}),
        )
        .unwrap();
        let AreaInput::Network(n) = input else {
            panic!()
        };
        assert_eq!(n.host, "::ffff:127.0.0.1");
        assert_eq!(n.ips, vec!["::ffff:127.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_ip_is_a_clear_error() {
        let err = AreaInput::from_json(
            Area::Network,
            json!({"phase": "connect", "host": "a", "port": 1, "ips": ["1.2.3"]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("network input shape"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = AreaInput::from_json(
            Area::Network,
            json!({"phase": "connect", "host": "a", "port": 1, "ipz": []}),
        )
        .unwrap_err();
        assert!(matches!(err, InputError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn files_paths_are_normalised_and_escapes_flagged() {
        for (raw, want, inside) in [
            ("a/./b//c", "a/b/c", true),
            ("a/../b", "b", true),
            ("../etc/passwd", "/etc/passwd", false),
            ("/etc/passwd", "/etc/passwd", false),
            ("a/../../x", "/x", false),
            (".", ".", true),
        ] {
            assert_eq!(
                normalise_workspace_path(raw).unwrap(),
                (want.to_owned(), inside),
                "{raw}"
            );
        }
    }

    #[test]
    fn caller_cannot_claim_in_workspace() {
        let (_, input) = AreaInput::from_json(
            Area::Files,
            json!({"operation": "write", "path": "../x", "in_workspace": true}),
        )
        .unwrap();
        let AreaInput::Files(f) = input else { panic!() };
        assert!(!f.in_workspace);
        assert!(f.write);
    }
}
