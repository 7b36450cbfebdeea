//! WebSockets through the proxy: a Python echo server on loopback (plain, or TLS with a
//! test certificate), a client that speaks the handshake and frames itself, through a CONNECT
//! tunnel, plain-HTTP forwarding and an intercepted tunnel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;

use super::harness::*;
use super::tls::{intercepting_ca, issue};

const ECHO: &str = r#"
import socket, hashlib, base64, threading, ssl, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = ctx.wrap_socket(srv, server_side=True)
print(srv.getsockname()[1], flush=True)
def handle(c):
    with c:
        serve(c)
def serve(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk: return
        data += chunk
    key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        head = c.recv(2)
        if len(head) < 2: return
        n = head[1] & 0x7f
        mask = c.recv(4)
        payload = b""
        while len(payload) < n: payload += c.recv(n - len(payload))
        msg = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        c.sendall(bytes([0x81, len(msg)]) + msg)
while True:
    try:
        c, _ = srv.accept()
    except (ssl.SSLError, OSError):
        continue
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// The echo server's process, killed when the test ends, failed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the echo server (TLS with `cert` and `key` when given); returns it and its port.
fn echo_server(tls: Option<(&std::path::Path, &std::path::Path)>) -> (Server, u16) {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", ECHO]);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let mut server = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Server(server), line.trim().parse().unwrap())
}

/// Reads an HTTP head one byte at a time (so nothing after it is consumed).
fn read_head(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The upgrade handshake for `target` (origin-form or absolute-form), then two echoed frames.
fn upgrade_and_echo(s: &mut (impl Read + Write), target: &str, host: &str) {
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    s.flush().unwrap();
    let head = read_head(s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    for text in ["hello ws", "second message"] {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        s.write_all(&frame).unwrap();
        s.flush().unwrap();
        let mut hdr = [0u8; 2];
        s.read_exact(&mut hdr).unwrap();
        assert_eq!(hdr[0], 0x81);
        let mut payload = vec![0u8; usize::from(hdr[1])];
        s.read_exact(&mut payload).unwrap();
        assert_eq!(String::from_utf8(payload).unwrap(), text);
    }
}

/// Waits (bounded) for the tunnel record of an upgraded stream.
fn upgrade_record(p: &Running) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = p
            .records()
            .into_iter()
            .find(|r| r["action"] == "tunnel" && r["detail"]["upgrade"] == "websocket")
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the upgraded stream: {:?}",
            p.records()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_websocket_echo_through_plain_forwarding() {
    let (_server, port) = echo_server(None);
    let p = proxy(&["ws.test"], &[("ws.test", "127.0.0.1")]);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    upgrade_and_echo(
        &mut s,
        &format!("http://ws.test:{port}/chat"),
        &format!("ws.test:{port}"),
    );
    drop(s);
    let rec = upgrade_record(&p);
    assert_eq!(rec["target"], format!("ws.test:{port}"));
}

#[test]
fn a_websocket_upgrade_carrying_a_secret_is_blocked() {
    let (_server, port) = echo_server(None);
    let p = proxy(&["ws.test"], &[("ws.test", "127.0.0.1")]);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET http://ws.test:{port}/chat?token=ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK HTTP/1.1\r\n\
         Host: ws.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}

#[test]
fn a_websocket_echo_inside_an_intercepted_tunnel() {
    let issued = issue("secure.test");
    let (_server, port) = echo_server(Some((&issued.cert, &issued.key)));
    let (p, cordon_ca, _keep) = intercepting_ca(&issued.ca, true);
    let mut tcp = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "CONNECT secure.test:{port} HTTP/1.1\r\nHost: secure.test:{port}\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut tcp).starts_with("HTTP/1.1 200"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&cordon_ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    upgrade_and_echo(&mut tls, "/chat", &format!("secure.test:{port}"));
    drop(tls);
    let rec = upgrade_record(&p);
    assert_eq!(rec["target"], format!("secure.test:{port}"));
}

#[test]
fn a_websocket_echo_through_a_tunnel() {
    let (_server, port) = echo_server(None);
    let p = proxy(&["ws.test"], &[("ws.test", "127.0.0.1")]);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "CONNECT ws.test:{port} HTTP/1.1\r\nHost: ws.test:{port}\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    upgrade_and_echo(&mut s, "/chat", &format!("ws.test:{port}"));
    drop(s);
}
