//! `cordon`: the one binary. It parses arguments and configuration, wires the libraries
//! together and maps outcomes to exit codes; the logic lives in the library crates.
//!
//! Exit codes: 0 success (or allow), 1 a negative answer (deny, failing tests, a tampered log,
//! findings), 2 an error that prevented an answer.

mod cmd;
mod config;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A self-hosted, security-first sandbox for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "cordon", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (default: $CORDON_CONFIG, then ./cordon.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Audit log to write to (default: [audit] path, then ~/.local/state/cordon/audit.jsonl).
    #[arg(long, global = true, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Test and evaluate Rego policies.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCmd),
    /// Verify, follow and search the audit log.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCmd),
    /// Run one command in the sandbox, through the egress proxy, and exit with its status.
    Run(cmd::run::RunArgs),
    /// Serve the MCP tools (files, shell, git) on stdio or streamable HTTP.
    Mcp(cmd::mcp::McpArgs),
    /// Start the egress proxy and the MCP server over HTTP, and print client configurations.
    Up(cmd::up::UpArgs),
    /// Run the egress proxy on a unix socket (and optionally loopback TCP) until stopped.
    Proxy(cmd::proxy::ProxyArgs),
    /// Report which isolation features this host supports, and why not.
    Doctor(cmd::doctor::DoctorArgs),
    /// Scan files, directories or stdin for secrets. Exit 1 when something is found.
    Scan(cmd::scan::ScanArgs),
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Diagnostics go to stderr: stdout carries command output (and, for `cordon mcp`, protocol).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let ctx = cmd::Ctx {
        config_flag: cli.config,
        audit_flag: cli.audit_log,
    };
    let result = match cli.command {
        Command::Policy(c) => c.run(&ctx),
        Command::Audit(c) => c.run(&ctx),
        Command::Run(a) => a.run(&ctx),
        Command::Mcp(a) => a.run(&ctx),
        Command::Up(a) => a.run(&ctx),
        Command::Proxy(a) => a.run(&ctx),
        Command::Doctor(a) => a.run(&ctx),
        Command::Scan(a) => a.run(&ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
