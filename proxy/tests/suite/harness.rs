//! A proxy on loopback with the default policies, an origin server that records every byte it
//! receives, and curl.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};

use cordon_policy::{LoadOptions, Policy, PolicyConfig, PolicyLocation};
use cordon_proxy::{Gate, Proxy, ProxyConfig};

/// An HTTP origin on 127.0.0.1 that answers 200 "hello from origin" and keeps what it received.
pub struct Origin {
    pub port: u16,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl Origin {
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    let mut head = Vec::new();
                    // Read the head, then as much body as Content-Length says.
                    loop {
                        let n = conn.read(&mut buf).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        head.extend_from_slice(&buf[..n]);
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                        if let Some(end) = find(&head, b"\r\n\r\n") {
                            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                            let len: usize = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if head.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let body = "hello from origin";
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Origin { port, received }
    }

    pub fn saw(&self, needle: &str) -> bool {
        find(&self.received.lock().unwrap(), needle.as_bytes()).is_some()
    }

    pub fn bytes(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A running proxy: a loopback TCP port, a unix socket, and its audit log.
pub struct Running {
    pub port: u16,
    /// Where `GET /metrics` is served.
    pub metrics_port: u16,
    pub socket: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// Allow `allow` hosts; pin `hosts` names to addresses; loopback addresses are allowed.
pub fn proxy(allow: &[&str], hosts: &[(&str, &str)]) -> Running {
    proxy_with(allow, hosts, |_| {})
}

/// As [`proxy`], with a chance to change the configuration (interception, roots).
pub fn proxy_with(
    allow: &[&str],
    hosts: &[(&str, &str)],
    edit: impl FnOnce(&mut ProxyConfig),
) -> Running {
    proxy_full(allow, hosts, edit, &[])
}

/// As [`proxy_with`], with report mode for `report` areas.
pub fn proxy_full(
    allow: &[&str],
    hosts: &[(&str, &str)],
    edit: impl FnOnce(&mut ProxyConfig),
    report: &[cordon_policy::Area],
) -> Running {
    let mut policy_config = PolicyConfig::default();
    policy_config.network.allow = allow.iter().map(|s| (*s).to_owned()).collect();
    // The test servers live on loopback; `strict:` hosts leave it denied, as in production.
    if !allow.iter().any(|a| a.starts_with("strict.")) {
        policy_config.network.allow_addresses = vec!["127.0.0.0/8".into()];
    }
    let set = PolicyLocation::Embedded
        .load(&policy_config, &LoadOptions::default())
        .unwrap();
    let policy = Arc::new(Policy::new(set));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = Arc::new(
        cordon_audit::AuditLog::open(&log, cordon_audit::AuditOptions::default()).unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tcp = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = tcp.local_addr().unwrap().port();
    let socket = dir.path().join("proxy.sock");
    let unix = {
        let _guard = runtime.enter();
        tokio::net::UnixListener::bind(&socket).unwrap()
    };
    let config = ProxyConfig {
        hosts: hosts
            .iter()
            .map(|(n, ip)| ((*n).to_owned(), vec![ip.parse::<IpAddr>().unwrap()]))
            .collect(),
        listen: vec![tcp.local_addr().unwrap()],
        max_scan_bytes: 1 << 20,
        ..ProxyConfig::default()
    };
    let mut config = config;
    edit(&mut config);
    let scanner = cordon_secrets::Scanner::with_defaults().unwrap();
    let proxy = Proxy::new(
        config,
        Gate::new(policy, Some(audit), Some("test".into())).report(report),
        scanner,
    )
    .unwrap();
    let p2 = proxy.clone();
    let p3 = proxy.clone();
    let metrics = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let metrics_port = metrics.local_addr().unwrap().port();
    runtime.spawn(async move { p3.serve_metrics(metrics).await });
    runtime.spawn(async move { proxy.serve_tcp(tcp).await });
    runtime.spawn(async move { p2.serve_unix(unix).await });
    Running {
        port,
        metrics_port,
        socket,
        log,
        _dir: dir,
        _runtime: runtime,
    }
}

impl Running {
    /// curl through the proxy with `args`; returns (status line code, body, output).
    pub fn curl(&self, args: &[&str]) -> (u16, String, Output) {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-m",
                "10",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--noproxy",
                "",
            ])
            .arg("-x")
            .arg(format!("http://127.0.0.1:{}", self.port))
            .args(args)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned(), out)
    }

    /// The audit records written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        cordon_audit::read::records(&self.log, false).unwrap_or_default()
    }

    /// The last egress record.
    pub fn last(&self) -> serde_json::Value {
        self.records()
            .into_iter()
            .rev()
            .find(|r| r["kind"] == "egress")
            .expect("an egress record")
    }
}
