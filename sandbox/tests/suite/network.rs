//! Attacks on the network boundary, and the one way out: the bridge to the proxy. Every server
//! here listens on the host's loopback or a unix socket the test made.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::harness::*;

fn py(code: &str) -> String {
    format!("python3 -c '{code}'")
}

/// A Python attempt to connect a `family` socket to `address` (a Python expression); prints
/// CONNECTED or "refused ERRNO".
fn connect_probe(family: &str, address: &str) -> String {
    py(&format!(
        "import socket\ns = socket.socket({family})\ns.settimeout(2)\ntry:\n s.connect({address}); print(\"CONNECTED\")\nexcept OSError as e: print(\"refused\", e.errno)"
    ))
}

#[test]
fn blocks_raw_and_packet_sockets() {
    let ws = Ws::new();
    let sb = ws.sandbox();
    let probe = |family: &str, kind: &str, proto: &str| {
        py(&format!(
            "import socket\ntry:\n socket.socket({family}, {kind}, {proto}); print(\"OPENED\")\nexcept OSError as e: print(\"refused\", e.errno)"
        ))
    };
    let script = [
        probe("socket.AF_INET", "socket.SOCK_RAW", "socket.IPPROTO_ICMP"),
        probe(
            "socket.AF_INET6",
            "socket.SOCK_RAW",
            "socket.IPPROTO_ICMPV6",
        ),
        probe("socket.AF_PACKET", "socket.SOCK_RAW", "0"),
        probe("socket.AF_NETLINK", "socket.SOCK_RAW", "9"), // NETLINK_AUDIT
        probe("40", "socket.SOCK_STREAM", "0"),             // AF_VSOCK
    ]
    .join("; ");
    let (r, _) = audited(&sb, &script);
    r.ok();
    assert!(!r.stdout.contains("OPENED"), "{}", r.stdout);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("refused"))
            .count(),
        5,
        "{}",
        r.stdout
    );
}

/// Runs curl (ignoring the proxy variables) and a raw connect against a TCP server the test
/// listens with on the host's loopback, and checks that neither reached it.
fn assert_unreachable(server: TcpListener, host: &str, family: &str) {
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port();
    let ws = Ws::new();
    let sb = ws.sandbox();
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let (r, _) = audited(
        &sb,
        &format!(
            "env -u HTTP_PROXY -u http_proxy curl -s -m 2 --noproxy '*' http://{url_host}:{port}/ \
             && echo REACHED; {}; echo done",
            connect_probe(family, &format!("(\"{host}\", {port})"))
        ),
    );
    assert!(
        !r.stdout.contains("REACHED") && !r.stdout.contains("CONNECTED"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("refused"), "{}", r.stdout);
    assert!(server.accept().is_err(), "the host server saw a connection");
}

#[test]
fn blocks_direct_tcp_to_the_host_ignoring_the_proxy() {
    assert_unreachable(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        "127.0.0.1",
        "socket.AF_INET",
    );
}

#[test]
fn blocks_dns_to_a_resolver() {
    let ws = Ws::new();
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = resolver.local_addr().unwrap().port();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        &format!(
            "{}; {}; cat /etc/resolv.conf | grep -c nameserver; echo done",
            py(
                "import socket\ntry:\n socket.getaddrinfo(\"example.com\", 443); print(\"RESOLVED\")\nexcept OSError as e: print(\"no resolver\")"
            ),
            py(&format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b\"query\", (\"127.0.0.1\", {port})); s.sendto(b\"query\", (\"127.0.0.53\", 53)); print(\"sent\")"
            ))
        ),
    );
    assert!(!r.stdout.contains("RESOLVED"), "{}", r.stdout);
    assert!(r.stdout.contains("no resolver"), "{}", r.stdout);
    let mut buf = [0u8; 64];
    assert!(
        resolver.recv_from(&mut buf).is_err(),
        "a datagram reached the host"
    );
}

#[test]
fn blocks_ipv6() {
    match TcpListener::bind("[::1]:0") {
        Ok(server) => assert_unreachable(server, "::1", "socket.AF_INET6"),
        Err(_) => {
            // No IPv6 on the host's loopback: nothing to reach; the sandbox has none either.
            let ws = Ws::new();
            let r = sh(
                &ws.sandbox(),
                "curl -s -m 2 -6 http://[::1]:1/ && echo REACHED; echo done",
            );
            assert!(!r.stdout.contains("REACHED"));
        }
    }
}

#[test]
fn blocks_host_unix_sockets() {
    use std::os::linux::net::SocketAddrExt;
    let ws = Ws::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.sock");
    let named = UnixListener::bind(&path).unwrap();
    named.set_nonblocking(true).unwrap();
    let abstract_name = format!("cordon-test-{}", std::process::id());
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let abstract_listener = UnixListener::bind_addr(&addr).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    let sb = ws.sandbox();
    let (r, _) = audited(
        &sb,
        &format!(
            "{}; {}; echo done",
            connect_probe("socket.AF_UNIX", &format!("\"{}\"", path.display())),
            connect_probe("socket.AF_UNIX", &format!("\"\\0{abstract_name}\"")),
        ),
    );
    assert!(!r.stdout.contains("CONNECTED"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("refused").count(), 2, "{}", r.stdout);
    assert!(named.accept().is_err() && abstract_listener.accept().is_err());
}

/// Reads an HTTP request head, up to and including the blank line.
fn read_head(conn: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An HTTP server on the host's loopback that answers every request with `body`.
fn http_server(body: &'static str, hits: Arc<AtomicU64>) -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { return };
            hits.fetch_add(1, Ordering::SeqCst);
            read_head(&mut conn);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A stand-in for the egress proxy: a forward proxy on a unix socket that sends every request
/// to `upstream_port` on the host's loopback, whatever host it names.
fn test_proxy(
    socket: &std::path::Path,
    upstream_port: u16,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let head = read_head(&mut conn);
            let line = head.lines().next().unwrap_or_default().to_owned();
            seen.lock().unwrap().push(line.clone());
            let target = line.split(' ').nth(1).unwrap_or("/");
            let path = target
                .splitn(4, '/')
                .nth(3)
                .map_or("/".to_owned(), |p| format!("/{p}"));
            let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n");
            up.write_all(request.as_bytes()).unwrap();
            let mut resp = Vec::new();
            up.read_to_end(&mut resp).unwrap();
            conn.write_all(&resp).unwrap();
        }
    });
}

#[test]
fn reaches_a_host_server_only_through_the_bridge() {
    let ws = Ws::new();
    let hits = Arc::new(AtomicU64::new(0));
    let port = http_server("hello through the bridge", Arc::clone(&hits));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    test_proxy(&socket, port, Arc::clone(&seen));
    let mut config = ws.config();
    config.proxy_socket = Some(socket);
    let sb = cordon_sandbox::Sandbox::new(config).unwrap();
    let (r, event) = audited(
        &sb,
        &format!(
            "echo proxy=$HTTP_PROXY; curl -sS -m 5 http://upstream.test/hello; echo; \
             curl -s -m 2 --noproxy '*' http://127.0.0.1:{port}/ && echo DIRECT; echo done"
        ),
    );
    r.ok();
    assert!(
        r.stdout.contains("proxy=http://127.0.0.1:3128"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("hello through the bridge"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(!r.stdout.contains("DIRECT"), "{}", r.stdout);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the proxied request reached the server"
    );
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["GET http://upstream.test/hello HTTP/1.1"]
    );
    assert_eq!(r.outcome.bridge_connections, 1);
    assert_eq!(event["detail"]["bridge_connections"], 1);
}

#[test]
fn bridge_port_is_the_only_tcp_destination_inside() {
    // Even inside its own namespace, the command can neither listen on TCP nor connect to a
    // port other than the bridge's (landlock TCP rules).
    let ws = Ws::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let mut config = ws.config();
    config.proxy_socket = Some(socket);
    let sb = cordon_sandbox::Sandbox::new(config).unwrap();
    let r = sh(
        &sb,
        &py(
            "import socket\ns = socket.socket()\ntry:\n s.bind((\"127.0.0.1\", 8080)); s.listen(); print(\"LISTENING\")\nexcept OSError as e: print(\"refused\", e.errno)\nc = socket.socket()\ntry:\n c.connect((\"127.0.0.1\", 3129)); print(\"CONNECTED\")\nexcept OSError as e: print(\"refused\", e.errno)",
        ),
    );
    r.ok();
    assert!(
        !r.stdout.contains("LISTENING") && !r.stdout.contains("CONNECTED"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches("refused 13").count(),
        2,
        "landlock answers EACCES: {}",
        r.stdout
    );
}
