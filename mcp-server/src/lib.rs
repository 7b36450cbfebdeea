//! cordon's MCP server: file, shell and git tools over named workspaces, for any MCP client.
//!
//! Every call passes one pipeline ([`server`]): the `tools` policy decides on the arguments
//! (secrets redacted), the tool runs (file tools on descriptors opened beneath the workspace
//! root, commands and git in the workspace's sandbox), the result is scanned for secrets on
//! its way to the model, and one audit record is written. Served over stdio and streamable
//! HTTP ([`http`]: bearer token, Host and Origin checks).

mod error;
mod files;
mod git;
mod guard;
pub mod http;
pub mod output;
mod paths;
mod server;
mod shell;
mod workspace;

pub use error::ToolError;
pub use guard::Guard;
pub use server::CordonServer;
pub use workspace::{Registry, Spawner, Workspace};

use rmcp::ServiceExt;

/// Serves `server` on stdin and stdout until the client closes them. stdout carries protocol
/// only; diagnostics go to stderr through `tracing`.
pub async fn serve_stdio(server: CordonServer) -> Result<(), std::io::Error> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
