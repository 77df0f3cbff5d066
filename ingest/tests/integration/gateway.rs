//! The HTTP gateway against slow, oversized and hostile clients, over real
//! loopback TCP. Nothing here reaches the broker (every request is refused
//! before producing), so the producer points at a closed loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_event::DecodeLimits;
use tollgate_ingest::gateway::{router, Gateway, GatewayConfig};
use tollgate_ingest::kafka::{producer, ObservedContext};
use tollgate_ingest::KafkaConfig;
use tollgate_pipeline::metrics::Metrics;

/// Starts a gateway with small bounds; returns its address.
fn start() -> std::net::SocketAddr {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kafka = KafkaConfig {
        brokers: "127.0.0.1:9".into(),
        ..KafkaConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let config = GatewayConfig {
        max_body_bytes: 2_000,
        header_timeout: Duration::from_millis(700),
        body_timeout: Duration::from_millis(700),
        ..GatewayConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let p = producer(&kafka, ObservedContext::new(metrics.clone())).unwrap();
            let gw = Arc::new(Gateway::new(
                p,
                "t",
                DecodeLimits::default(),
                config.clone(),
                metrics,
            ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            tollgate_ingest::http_server::serve(
                listener,
                router(gw),
                config.header_timeout,
                std::future::pending(),
            )
            .await;
        });
    });
    rx.recv().unwrap()
}

/// Sends `head` (and nothing more), then reads what the server says until
/// it closes the connection or 10 s pass. Returns the text and how long it took.
fn exchange(addr: std::net::SocketAddr, head: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(head).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains("\"error\"") {
                    break;
                }
            }
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn slow_and_oversized_clients_are_bounded() {
    let addr = start();

    // 413 from Content-Length alone: no body was sent.
    let (text, _) = exchange(
        addr,
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("Content-Length is 5000000 bytes"), "{text}");

    // A chunked body that grows past the limit: 413 too.
    let mut chunked =
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"3e8\r\n");
        chunked.extend_from_slice(&[b' '; 1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    let (text, _) = exchange(addr, &chunked);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    // A body that stops half-way: 408 after the body timeout.
    let (text, took) = exchange(
        addr,
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"specversion\":",
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("gateway.body_timeout"), "{text}");
    assert!(
        took >= Duration::from_millis(600),
        "answered before the timeout: {took:?}"
    );

    // Headers that never end: the connection is closed.
    let (text, took) = exchange(addr, b"POST /v1/events HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    assert!(!text.contains("202"), "{text}");
    assert!(
        took < Duration::from_secs(9),
        "a slow sender held the connection for {took:?}"
    );

    // A hostile event: the refusal quotes none of it.
    let body = r#"{"specversion":"1.0","id":"e1","source":"s","type":"dev.tollgate.tool_call.v1","time":"2026-11-03T14:00:00Z","data":{"tenant":"acme","team":"search","user":"usr_1","environment":"prod","mcp_server":"crm","tool":"t","phase":"start","call_id":"c","arguments":{},"alice@example.com":1,"x\ny":2}}"#;
    let req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (text, _) = exchange(addr, req.as_bytes());
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(!text.contains("alice") && !text.contains("x\\ny"), "{text}");
}
