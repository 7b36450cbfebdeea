//! A WebSocket through a CONNECT tunnel: a Python echo server on loopback, a client that
//! speaks the handshake and frames itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use super::harness::*;

const ECHO: &str = r#"
import socket, hashlib, base64, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
print(srv.getsockname()[1], flush=True)
def handle(c):
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
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

fn read_head(s: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

#[test]
fn a_websocket_echo_through_a_tunnel() {
    let mut server = Command::new("python3")
        .args(["-c", ECHO])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let p = proxy(&["ws.test"], &[("ws.test", "127.0.0.1")]);

    let s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    write!(
        w,
        "CONNECT ws.test:{port} HTTP/1.1\r\nHost: ws.test:{port}\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut r).starts_with("HTTP/1.1 200"));
    write!(
        w,
        "GET /chat HTTP/1.1\r\nHost: ws.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut r);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    for text in ["hello ws", "second message"] {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        w.write_all(&frame).unwrap();
        let mut hdr = [0u8; 2];
        r.read_exact(&mut hdr).unwrap();
        assert_eq!(hdr[0], 0x81);
        let mut payload = vec![0u8; usize::from(hdr[1])];
        r.read_exact(&mut payload).unwrap();
        assert_eq!(String::from_utf8(payload).unwrap(), text);
    }
    drop(w);
    drop(r);
    let _ = server.kill();
    let _ = server.wait();
}
