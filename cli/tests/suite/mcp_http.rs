//! `cordon mcp --http`: rmcp's streamable HTTP client with the token works; no token, a wrong
//! token, a foreign Host or Origin are refused and audited.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use super::Env;

struct Server {
    child: Child,
    port: u16,
    token: String,
    env: Env,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    start_with(Env::new(), &[])
}

fn start_with(env: Env, extra: &[&str]) -> Server {
    env.write("ws/hello.txt", "hello over http\n");
    env.write("cordon.toml", "");
    let token_file = env.path("state/mcp.token");
    let mut child = env
        .command(&[
            "--config",
            "cordon.toml",
            "mcp",
            "--no-network",
            "--workspace",
            env.path("ws").to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut port = 0;
    for _ in 0..50 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.split("://127.0.0.1:").nth(1) {
            port = rest.split('/').next().unwrap().parse().unwrap();
            break;
        }
    }
    assert_ne!(port, 0, "the server did not say where it listens");
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    // The token file was created private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.len() >= 32);
    Server {
        child,
        port,
        token,
        env,
    }
}

/// A raw POST of an initialize request with `headers`; returns the status code (0: no HTTP
/// answer, e.g. a TLS port that dropped the connection, even mid-write).
fn post(port: u16, headers: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let sent = write!(
        s,
        "POST /mcp HTTP/1.1\r\n{headers}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if sent.is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn http_needs_the_token_and_the_right_host() {
    let srv = start();
    let host = format!("Host: 127.0.0.1:{}\r\n", srv.port);
    assert_eq!(post(srv.port, &host), 401, "no token");
    assert_eq!(
        post(
            srv.port,
            &format!("{host}Authorization: Bearer wrong-token-wrong-token-wrong-token\r\n")
        ),
        401,
        "wrong token"
    );
    let auth = format!("Authorization: Bearer {}\r\n", srv.token);
    assert_eq!(
        post(
            srv.port,
            &format!("Host: evil.example:{}\r\n{auth}", srv.port)
        ),
        403,
        "DNS rebinding"
    );
    assert_eq!(
        post(
            srv.port,
            &format!("{host}{auth}Origin: https://evil.example\r\n")
        ),
        403,
        "foreign origin"
    );
    assert_eq!(post(srv.port, &format!("{host}{auth}")), 200);

    let log = std::fs::read_to_string(srv.env.log()).unwrap();
    let refused: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &serde_json::Value| r["action"] == "http" && r["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(!log.contains(&srv.token), "the token reached the log");
}

#[test]
fn rmcp_client_over_streamable_http() {
    let srv = start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = StreamableHttpClientTransportConfig::with_uri(format!(
            "http://127.0.0.1:{}/mcp",
            srv.port
        ))
        .auth_header(srv.token.clone());
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "exec"));
        let r = client
            .call_tool(
                CallToolRequestParams::new("read_file")
                    .with_arguments(json!({"path": "hello.txt"}).as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert_eq!(
            r.structured_content.unwrap()["content"],
            "hello over http\n"
        );
        client.cancel().await.unwrap();
    });
}

#[test]
fn up_prints_configurations_that_hold_no_token() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("ws")).unwrap();
    env.write("cordon.toml", "");
    let mut child = env
        .command(&[
            "--config",
            "cordon.toml",
            "up",
            "--workspace",
            env.path("ws").to_str().unwrap(),
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
        if line.starts_with("bearer_token_env_var") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let block = |title: &str| -> serde_json::Value {
        let start = text.find(title).unwrap() + title.len();
        let rest = &text[start..];
        let end = rest.find("\n\n---").unwrap_or(rest.len());
        serde_json::from_str(rest[..end].trim()).unwrap()
    };
    let claude = block(".mcp.json ---");
    let url = claude["mcpServers"]["cordon"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert_eq!(
        claude["mcpServers"]["cordon"]["headers"]["Authorization"],
        "Bearer ${CORDON_MCP_TOKEN}"
    );
    assert_eq!(
        block(".vscode/mcp.json ---")["servers"]["cordon"]["url"],
        url
    );
    assert_eq!(
        block("~/.cursor/mcp.json ---")["mcpServers"]["cordon"]["url"],
        url
    );
    assert!(text.contains(&format!("[mcp_servers.cordon]\nurl = \"{url}\"")));
    // The token itself is in none of them.
    let token = std::fs::read_to_string(env.path(".local/state/cordon/mcp.token")).unwrap();
    assert!(!text.contains(token.trim()));
}

#[test]
fn https_with_a_configured_certificate() {
    let env = Env::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cordon test");
    let cert = params.self_signed(&key).unwrap();
    let cert_file = env.write("tls/cert.pem", &cert.pem());
    let key_file = env.write("tls/key.pem", &key.serialize_pem());
    let srv = start_with(
        env,
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let curl = |auth: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--cacert", cert_file.to_str().unwrap()])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", "Accept: application/json, text/event-stream"])
            .args(["-H", auth, "--data", body])
            .arg(format!("https://127.0.0.1:{}/mcp", srv.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&format!("Authorization: Bearer {}", srv.token)), "200");
    assert_eq!(curl("Authorization: Bearer nope"), "401");
    // Plain HTTP to the TLS port gets nothing.
    assert_eq!(
        post(srv.port, &format!("Host: 127.0.0.1:{}\r\n", srv.port)),
        0
    );
}
