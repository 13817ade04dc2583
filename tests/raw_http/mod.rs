//! Raw HTTP/1.1 for the tests that send what client libraries refuse or tidy up (non-UTF-8
//! headers, duplicate headers, huge heads, hand-made chunked bodies), and a counting upstream.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// An upstream that answers 200 and counts every request it sees.
pub fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, seen)
}

/// What came back for one raw request.
#[derive(Debug)]
pub enum Answer {
    Status {
        status: u16,
        error: Option<String>,
    },
    /// The gateway closed or reset the connection without a complete answer.
    Closed,
}

/// Sends raw bytes and reads until the gateway closes: the whole answer, or `None` when the
/// gateway closed or reset the connection without a byte.
pub fn exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    if s.read_to_end(&mut out).is_err() && out.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Sends raw bytes, reads until the gateway closes, and parses the status and JSON `error`.
pub fn send(port: u16, request: &[u8]) -> Answer {
    let Some(text) = exchange(port, request) else {
        return Answer::Closed;
    };
    let Some(status) = text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)?.parse().ok()) else {
        return Answer::Closed;
    };
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from));
    Answer::Status { status, error }
}

/// Reads one whole answer from a kept-alive connection (its head, and its body up to
/// `Content-Length`) without waiting for the connection to close: the head and the body.
pub fn read_answer(s: &mut TcpStream) -> (String, String) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed mid-answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        if body.len() >= length {
            return (head.to_string(), body[..length].to_string());
        }
    }
}

/// A raw HTTP/1.1 request.
pub struct Raw(pub Vec<u8>);

impl Raw {
    pub fn new(method: &str, path: &str) -> Raw {
        Raw(format!("{method} {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n").into_bytes())
    }
    pub fn post(path: &str) -> Raw {
        Raw::new("POST", path)
    }
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Raw {
        self.0.extend_from_slice(format!("{name}: ").as_bytes());
        self.0.extend_from_slice(value.as_ref());
        self.0.extend_from_slice(b"\r\n");
        self
    }
    pub fn basic(self, user: &str, pass: &str) -> Raw {
        self.header(
            "Authorization",
            format!("Basic {}", STANDARD.encode(format!("{user}:{pass}"))),
        )
    }
    pub fn form(self, body: impl AsRef<[u8]>) -> Vec<u8> {
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }
    pub fn body(self, body: impl AsRef<[u8]>) -> Vec<u8> {
        let mut r = self.header("Content-Length", body.as_ref().len().to_string()).0;
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body.as_ref());
        r
    }
    pub fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// A chunked body of `n` bytes in 4 KiB chunks.
pub fn chunked(path: &str, user: &str, secret: &str, n: usize) -> Vec<u8> {
    let mut r = Raw::post(path)
        .basic(user, secret)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Transfer-Encoding", "chunked")
        .end();
    for _ in 0..n / 4096 {
        r.extend_from_slice(format!("1000\r\n{}\r\n", "a".repeat(4096)).as_bytes());
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}
