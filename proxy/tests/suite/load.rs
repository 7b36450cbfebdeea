//! 1,000 connections open through the proxy at once, each with a request, all answered. The
//! load stays on loopback and ends by itself (a hard timeout bounds the whole test).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::*;

const CONNECTIONS: usize = 1000;

#[test]
fn a_thousand_concurrent_connections_without_an_error() {
    let p = proxy(&["load.test"], &[("load.test", "127.0.0.1")]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), load(p.port)).await });
    let (ok, errors) = result.expect("the load test did not finish within 60 s");
    assert_eq!(errors, 0, "{errors} failed");
    assert_eq!(ok, CONNECTIONS);
    let requests = p
        .records()
        .iter()
        .filter(|r| r["action"] == "request")
        .count();
    assert_eq!(requests, CONNECTIONS, "one audit record per request");
}

async fn load(proxy_port: u16) -> (usize, usize) {
    // The origin: answers each request once the whole head is in.
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_port = origin.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = origin.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    // Open every connection first, then send every request: 1,000 at once in the proxy.
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        streams.push(
            tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
                .await
                .unwrap(),
        );
    }
    let ok = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for (i, mut s) in streams.into_iter().enumerate() {
        let (ok, errors, barrier) = (Arc::clone(&ok), Arc::clone(&errors), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let req = format!(
                "GET http://load.test:{origin_port}/{i} HTTP/1.1\r\nHost: load.test\r\nConnection: close\r\n\r\n"
            );
            let mut resp = Vec::new();
            let wrote = s.write_all(req.as_bytes()).await;
            let read = s.read_to_end(&mut resp).await;
            let good = wrote.is_ok()
                && read.is_ok()
                && resp.starts_with(b"HTTP/1.1 200")
                && resp.ends_with(b"ok");
            if good {
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                eprintln!(
                    "request {i}: write {wrote:?}, read {read:?}, answer {:?}",
                    String::from_utf8_lossy(&resp)
                );
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed))
}
