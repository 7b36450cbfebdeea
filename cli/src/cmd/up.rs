//! `cordon up`: the egress proxy and the MCP server over HTTP with defaults, and the client
//! configurations to paste. The token never goes into them: each client reads it from the
//! environment (or asks for it), so a checked-in config holds no secret.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Ctx;
use super::mcp::McpArgs;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A workspace, as DIR or NAME=DIR; repeat for several. Default: the current directory.
    #[arg(long = "workspace", value_name = "[NAME=]DIR")]
    workspaces: Vec<String>,
    /// The loopback port (0: any free one).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Accept running without this sandbox feature ("landlock", "protected-creation").
    #[arg(long = "allow-weaker", value_name = "FEATURE")]
    allow_weaker: Vec<String>,
}

impl UpArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        McpArgs::up(self.workspaces, addr, self.allow_weaker).run(ctx)
    }
}

/// The environment variable every client configuration reads the token from.
pub const TOKEN_VAR: &str = "CORDON_MCP_TOKEN";

/// Ready-to-paste configurations for the common clients, for the server at `url`.
pub fn client_configs(url: &str, token_file: &Path) -> String {
    let claude = serde_json::json!({
        "mcpServers": {"cordon": {
            "type": "http",
            "url": url,
            "headers": {"Authorization": format!("Bearer ${{{TOKEN_VAR}}}")}
        }}
    });
    let vscode = serde_json::json!({
        "inputs": [{"type": "promptString", "id": "cordon-token", "description": "cordon MCP token", "password": true}],
        "servers": {"cordon": {
            "type": "http",
            "url": url,
            "headers": {"Authorization": "Bearer ${input:cordon-token}"}
        }}
    });
    let cursor = serde_json::json!({
        "mcpServers": {"cordon": {
            "url": url,
            "headers": {"Authorization": format!("Bearer ${{env:{TOKEN_VAR}}}")}
        }}
    });
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let token_file = PathBuf::from(token_file);
    format!(
        "cordon is serving MCP at {url}\n\
         The token is in {tf}; give it to clients through the environment:\n\n\
         \x20   export {TOKEN_VAR}=\"$(cat {tf})\"\n\n\
         --- Claude Code: .mcp.json ---\n{claude}\n\n\
         --- VS Code: .vscode/mcp.json ---\n{vscode}\n\n\
         --- Cursor: ~/.cursor/mcp.json ---\n{cursor}\n\n\
         --- Codex: ~/.codex/config.toml ---\n\
         [mcp_servers.cordon]\nurl = \"{url}\"\nbearer_token_env_var = \"{TOKEN_VAR}\"\n",
        tf = token_file.display(),
        claude = pretty(&claude),
        vscode = pretty(&vscode),
        cursor = pretty(&cursor),
    )
}
