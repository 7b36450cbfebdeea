//! Forwarding, tunnels, and what policy refuses: unlisted names, private addresses behind
//! allowed names, IP literals in every spelling, the proxy itself.

use super::harness::*;

#[test]
fn forwards_an_allowed_request_and_records_it() {
    let origin = Origin::start();
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    let (code, body, _) = p.curl(&[&format!("http://upstream.test:{}/hello?x=1", origin.port)]);
    assert_eq!(code, 200);
    assert_eq!(body, "hello from origin");
    assert!(
        origin.saw("GET /hello?x=1 HTTP/1.1"),
        "origin-form upstream"
    );
    assert!(!origin.saw("Proxy-Connection"));
    let rec = p.last();
    assert_eq!(rec["action"], "request");
    assert_eq!(rec["outcome"], "200");
    assert_eq!(rec["decision"]["allow"], true);
    assert_eq!(rec["target"], format!("upstream.test:{}", origin.port));
}

#[test]
fn tunnels_an_allowed_connect() {
    let origin = Origin::start();
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    let (code, body, _) = p.curl(&[
        "--proxytunnel",
        &format!("http://upstream.test:{}/t", origin.port),
    ]);
    assert_eq!(code, 200);
    assert_eq!(body, "hello from origin");
    // The tunnel's record is written when it closes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if p.records()
            .iter()
            .any(|r| r["action"] == "tunnel" && r["outcome"] == "closed")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", p.records());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let tunnel = p
        .records()
        .into_iter()
        .find(|r| r["action"] == "tunnel")
        .unwrap();
    assert!(tunnel["detail"]["bytes_up"].as_u64().unwrap() > 0);
    assert!(tunnel["detail"]["bytes_down"].as_u64().unwrap() > 0);
}

/// An origin that reads until end-of-file, then answers with the byte count and a checksum
/// of what it read, and closes: it sees the client's half-close only if the tunnel passes it on.
fn counting_origin() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(2) {
            let mut s = s.unwrap();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut all = Vec::new();
                s.read_to_end(&mut all).unwrap();
                write!(s, "{} {}", all.len(), checksum(&all)).unwrap();
            });
        }
    });
    port
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(*b)))
}

/// The payload: patterned, so a lost, doubled or reordered chunk changes the checksum.
fn payload() -> (Vec<u8>, String) {
    let data: Vec<u8> = (0..(4u32 << 20) + 7).map(|i| (i % 253) as u8).collect();
    let expect = format!("{} {}", data.len(), checksum(&data));
    (data, expect)
}

/// Sends the CONNECT with the payload's first bytes in the same write (before the 200, as a
/// client hurrying its TLS hello does), then the rest; half-closes with `close` and returns
/// the origin's answer.
fn pipelined_tunnel<S: std::io::Read + std::io::Write>(
    mut s: S,
    port: u16,
    data: &[u8],
    close: impl FnOnce(&S) -> std::io::Result<()>,
) -> String {
    let mut first =
        format!("CONNECT upstream.test:{port} HTTP/1.1\r\nHost: upstream.test:{port}\r\n\r\n")
            .into_bytes();
    first.extend_from_slice(&data[..1000]);
    s.write_all(&first).unwrap();
    let head = cordon_testkit::read_head(&mut s);
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(&data[1000..]).unwrap();
    close(&s).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn tunnels_carry_pipelined_bytes_and_half_closes_over_tcp_and_unix_sockets() {
    use std::net::Shutdown::Write;
    let port = counting_origin();
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    let (data, expect) = payload();
    let timeout = Some(std::time::Duration::from_secs(20));

    let tcp = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    tcp.set_read_timeout(timeout).unwrap();
    let answer = pipelined_tunnel(tcp, port, &data, |s| s.shutdown(Write));
    assert_eq!(answer, expect, "over TCP");

    let unix = std::os::unix::net::UnixStream::connect(&p.socket).unwrap();
    unix.set_read_timeout(timeout).unwrap();
    let answer = pipelined_tunnel(unix, port, &data, |s| s.shutdown(Write));
    assert_eq!(answer, expect, "over the unix socket");

    // Both tunnels' records count every byte each way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let tunnels: Vec<_> = p
            .records()
            .into_iter()
            .filter(|r| r["action"] == "tunnel" && r["outcome"] == "closed")
            .collect();
        if tunnels.len() == 2 {
            for t in tunnels {
                assert_eq!(t["detail"]["bytes_up"], data.len() as u64, "{t}");
                assert_eq!(t["detail"]["bytes_down"], expect.len() as u64, "{t}");
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", p.records());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn refuses_an_unlisted_host_without_resolving_it() {
    let origin = Origin::start();
    let p = proxy(&["upstream.test"], &[("other.test", "127.0.0.1")]);
    let (code, body, _) = p.curl(&[&format!("http://other.test:{}/", origin.port)]);
    assert_eq!(code, 403);
    assert!(body.contains("denied by policy"), "{body}");
    assert_eq!(origin.bytes(), 0);
    let rec = p.last();
    assert_eq!(rec["outcome"], "denied");
    assert_eq!(rec["decision"]["allow"], false);
    assert_eq!(
        rec["detail"]["request"]["phase"], "dns",
        "denied before any lookup"
    );
    let (code, _, _) = p.curl(&[
        "--proxytunnel",
        &format!("http://other.test:{}/", origin.port),
    ]);
    assert_ne!(code, 200);
    assert_eq!(origin.bytes(), 0);
}

#[test]
fn refuses_allowed_names_that_resolve_to_private_addresses() {
    let origin = Origin::start();
    let p = proxy(
        &["meta.test", "ten.test", "mapped.test", "upstream.test"],
        &[
            ("meta.test", "169.254.169.254"),
            ("ten.test", "10.0.0.1"),
            ("mapped.test", "::ffff:127.0.0.1"),
            ("upstream.test", "127.0.0.1"),
        ],
    );
    for name in ["meta.test", "ten.test", "mapped.test"] {
        let (code, body, _) = p.curl(&[&format!("http://{name}:{}/", origin.port)]);
        assert_eq!(code, 403, "{name}: {body}");
        assert!(
            body.contains("always denied") || body.contains("denied"),
            "{name}: {body}"
        );
        let rec = p.last();
        assert_eq!(
            rec["detail"]["request"]["phase"], "connect",
            "{name}: {rec}"
        );
    }
    assert_eq!(origin.bytes(), 0);
}

#[test]
fn refuses_ip_literals_in_every_spelling() {
    let origin = Origin::start();
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "[::ffff:7f00:1]",
        "169.254.169.254",
        "0xa9fea9fe",
    ] {
        let (code, body, _) = p.curl(&[
            "--path-as-is",
            &format!("http://{spelling}:{}/", origin.port),
        ]);
        assert_eq!(code, 403, "{spelling}: {body}");
        let rec = p.last();
        let target = rec["target"].as_str().unwrap();
        assert!(
            !target.contains("0x") && !target.starts_with("2130706433"),
            "normalised: {target}"
        );
    }
    assert_eq!(origin.bytes(), 0);
}

#[test]
fn refuses_a_connection_back_to_itself() {
    let p = proxy(&["self.test"], &[("self.test", "127.0.0.1")]);
    let (code, body, _) = p.curl(&[&format!("http://self.test:{}/", p.port)]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("back to the proxy itself"), "{body}");
}

#[test]
fn answers_clear_errors_to_malformed_requests() {
    let p = proxy(&["upstream.test"], &[]);
    // Origin-form to a proxy.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("absolute-form"), "{text}");
    // Garbage.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let n = s.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 400"), "{text}");
    // A bad CONNECT authority.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(b"CONNECT bad..host:443 HTTP/1.1\r\nHost: bad..host:443\r\n\r\n")
        .unwrap();
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // https in absolute form.
    let (code, body, _) = p.curl(&["--proxy-insecure", "-H", "x: y", "http://upstream.test/"]);
    let _ = (code, body);
}

#[test]
fn report_mode_records_would_deny_and_lets_the_request_through() {
    use cordon_policy::Area;
    let origin = Origin::start();
    let p = proxy_full(
        &["upstream.test"],
        &[("upstream.test", "127.0.0.1"), ("new.test", "127.0.0.1")],
        |_| {},
        &[Area::Network, Area::Secrets],
    );
    let (code, body, _) = p.curl(&[
        "-H",
        "X-Token: ghp_2ugKv2Ht9qICAAazXYhT1xZJOouhEtXSKHrK",
        &format!("http://new.test:{}/rollout", origin.port),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(origin.saw("GET /rollout"));
    let rec = p.last();
    assert_eq!(rec["decision"]["allow"], true);
    assert_eq!(rec["detail"]["would_deny"], true, "{rec}");
    assert_eq!(rec["detail"]["secrets_would_deny"], true, "{rec}");
    assert_eq!(rec["findings"][0]["rule"], "github-pat");
    // Only the areas in report mode are relaxed.
    let strict = proxy_full(
        &["upstream.test"],
        &[("new.test", "127.0.0.1")],
        |_| {},
        &[Area::Secrets],
    );
    let (code, _, _) = strict.curl(&[&format!("http://new.test:{}/", origin.port)]);
    assert_eq!(code, 403);
}

#[test]
fn refuses_loopback_unless_an_operator_allows_it() {
    // Without [network] allow_addresses, an allowed name that resolves to loopback is refused,
    // and so is the literal.
    let origin = Origin::start();
    let p = proxy(&["strict.test"], &[("strict.test", "127.0.0.1")]);
    let (code, body, _) = p.curl(&[&format!("http://strict.test:{}/", origin.port)]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("127.0.0.1"), "{body}");
    assert_eq!(origin.bytes(), 0);
    assert_eq!(p.last()["detail"]["request"]["phase"], "connect");
}

#[test]
fn metrics_count_requests_decisions_and_bytes() {
    use std::io::{Read, Write};
    let origin = Origin::start();
    let p = proxy(
        &["upstream.test"],
        &[("upstream.test", "127.0.0.1"), ("other.test", "127.0.0.1")],
    );
    assert_eq!(
        p.curl(&[
            "--data",
            "abc",
            &format!("http://upstream.test:{}/", origin.port)
        ])
        .0,
        200
    );
    assert_eq!(
        p.curl(&[&format!("http://other.test:{}/", origin.port)]).0,
        403
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.metrics_port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "cordon_proxy_requests_total{kind=\"request\",result=\"allowed\"} 1",
        "cordon_proxy_requests_total{kind=\"request\",result=\"denied\"} 1",
        "cordon_proxy_decisions_total{area=\"network\",result=\"deny\"} 1",
        "cordon_proxy_bytes_total{direction=\"up\"} 3",
        "cordon_proxy_active_tunnels 0",
        "cordon_proxy_request_duration_seconds_count 2",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
}

#[test]
fn limits_tunnels_idle_time_and_header_size() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let origin = Origin::start();
    let p = proxy_with(&["upstream.test"], &[("upstream.test", "127.0.0.1")], |c| {
        c.max_tunnels = 1;
        c.idle_timeout = Duration::from_millis(400);
        c.max_header_bytes = 8192;
    });
    // A CONNECT to the origin: the proxy's answer, and the connection.
    let open = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        write!(
            s,
            "CONNECT upstream.test:{0} HTTP/1.1\r\nHost: upstream.test:{0}\r\n\r\n",
            origin.port
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), s)
    };
    let connect = |expect: &str| {
        let (text, s) = open();
        assert!(text.starts_with(expect), "{text}");
        s
    };
    // One tunnel at most: the second gets 503.
    let mut first = connect("HTTP/1.1 200");
    drop(connect("HTTP/1.1 503"));
    // A quiet tunnel is closed after the idle limit, and its slot comes back.
    let started = Instant::now();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        first.read(&mut buf).unwrap_or(0),
        0,
        "the idle tunnel stayed open"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The slot comes back once the proxy has closed its side (give a loaded machine time).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (text, _s) = open();
        if text.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle tunnel's slot never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p
        .records()
        .iter()
        .any(|r| r["action"] == "tunnel" && r["outcome"] == "idle")
    {
        assert!(Instant::now() < deadline, "no idle record");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Oversized request heads get 431.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    let big = "a".repeat(20_000);
    let _ = write!(
        s,
        "GET http://upstream.test:{}/ HTTP/1.1\r\nX-Big: {big}\r\n\r\n",
        origin.port
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );
}

/// Reads from `s` until `needle` has arrived (or the read timeout fails the test).
fn read_until(s: &mut std::net::TcpStream, seen: &mut Vec<u8>, needle: &str) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}; got {seen:?}"));
        assert!(n > 0, "closed before {needle:?}: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn server_sent_events_pass_through_as_they_are_sent() {
    use std::io::Write;
    use std::sync::mpsc;
    // The origin sends one event, then waits until the client has seen it before the next:
    // a proxy that held the response back until its end would leave the client waiting.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (go, wait) = mpsc::channel::<()>();
    let origin = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        cordon_testkit::read_head(&mut s);
        let chunk = |s: &mut std::net::TcpStream, text: &str| {
            write!(s, "{:x}\r\n{text}\r\n", text.len()).unwrap();
            s.flush().unwrap();
        };
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        chunk(&mut s, "data: one\n\n");
        let next = wait.recv_timeout(std::time::Duration::from_secs(20));
        chunk(&mut s, "data: two\n\n");
        s.write_all(b"0\r\n\r\n").unwrap();
        next.is_ok()
    });
    let p = proxy(&["upstream.test"], &[("upstream.test", "127.0.0.1")]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        c,
        "GET http://upstream.test:{port}/events HTTP/1.1\r\nHost: upstream.test:{port}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    read_until(&mut c, &mut seen, "data: one\n\n");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(!text.contains("data: two"));
    go.send(()).unwrap();
    read_until(&mut c, &mut seen, "data: two\n\n");
    assert!(
        origin.join().unwrap(),
        "the origin sent its second event only when the first had arrived"
    );
}
