//! MCP tools/call round trips, driven by rmcp's client over stdio, in one process:
//! `read_file` of a small file through cordon against the official
//! `@modelcontextprotocol/server-filesystem` (npm) doing the same read, and an `exec` of `true`
//! in cordon's sandbox. Rounds interleave the servers so drift hits both alike; medians and p90
//! are printed with the ratio. Run by `bench/mcp/run.sh`, which installs the peer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const ROUNDS: usize = 20;
const PER_ROUND: usize = 50;

type Client = RunningService<RoleClient, ()>;

async fn connect(mut cmd: tokio::process::Command) -> Client {
    cmd.stderr(std::process::Stdio::null());
    ().serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap()
}

async fn call(client: &Client, tool: &str, args: &Value) -> Duration {
    let started = Instant::now();
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned())
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    took
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn peer_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MCP_FILESYSTEM_SERVER") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/mcp-clients/node_modules/.bin/mcp-server-filesystem");
    p.exists().then_some(p)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let text: String = (0..40)
        .map(|i| format!("line {i} of a small source file\n"))
        .collect();
    std::fs::write(ws.join("small.txt"), &text).unwrap();
    std::fs::write(dir.path().join("cordon.toml"), "").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
        cmd.args([
            "--config",
            "cordon.toml",
            "mcp",
            "--no-network",
            "--workspace",
        ])
        .arg(&ws)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("CORDON_AUDIT_LOG", dir.path().join("audit.jsonl"));
        let cordon = connect(cmd).await;
        let peer = match peer_path() {
            Some(p) => {
                let mut cmd = tokio::process::Command::new(p);
                cmd.arg(&ws);
                Some(connect(cmd).await)
            }
            None => {
                eprintln!("the official filesystem server is not installed: run bench/mcp/run.sh");
                None
            }
        };
        let peer_tool = match &peer {
            Some(p) => {
                let tools = p.list_all_tools().await.unwrap();
                if tools.iter().any(|t| t.name == "read_text_file") {
                    "read_text_file"
                } else {
                    "read_file"
                }
            }
            None => "",
        };
        let ours = json!({"path": "small.txt"});
        let theirs = json!({"path": ws.join("small.txt")});
        let exec = json!({"argv": ["true"]});
        // Warm up: caches, the sandbox warmer, node's JIT.
        for _ in 0..50 {
            call(&cordon, "read_file", &ours).await;
            if let Some(p) = &peer {
                call(p, peer_tool, &theirs).await;
            }
        }
        for _ in 0..10 {
            call(&cordon, "exec", &exec).await;
        }
        let (mut a, mut b, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for _ in 0..PER_ROUND {
                a.push(call(&cordon, "read_file", &ours).await);
            }
            if let Some(p) = &peer {
                for _ in 0..PER_ROUND {
                    b.push(call(p, peer_tool, &theirs).await);
                }
            }
            for _ in 0..PER_ROUND / 10 {
                e.push(call(&cordon, "exec", &exec).await);
            }
        }
        let (a50, a90) = stats(a);
        println!(
            "tools/call round trip over stdio, {ROUNDS} interleaved rounds, {} bytes read",
            text.len()
        );
        println!("| call | median | p90 |");
        println!("|---|---|---|");
        println!(
            "| cordon read_file | {:.0} µs | {:.0} µs |",
            us(a50),
            us(a90)
        );
        if !b.is_empty() {
            let (b50, b90) = stats(b);
            println!(
                "| server-filesystem {peer_tool} | {:.0} µs | {:.0} µs |",
                us(b50),
                us(b90)
            );
            println!("ratio cordon/official (median): {:.2}", us(a50) / us(b50));
        }
        let (e50, e90) = stats(e);
        println!(
            "| cordon exec `true` (sandboxed) | {:.0} µs | {:.0} µs |",
            us(e50),
            us(e90)
        );
        cordon.cancel().await.unwrap();
        if let Some(p) = peer {
            p.cancel().await.unwrap();
        }
    });
}
