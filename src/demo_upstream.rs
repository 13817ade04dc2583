//! A tiny HTTP/1.1 upstream for the quick start, tests and examples: it answers every request
//! with 200 and a JSON echo of the method, path, the identity and forwarding headers the gateway
//! set (and whether an `Authorization` header got through, which it must not).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Serves forever on `listener`, one thread per connection (keep-alive supported).
pub fn serve(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = handle(stream);
        });
    }
}

fn handle(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = serde_json::Map::new();
        let mut content_length = 0usize;
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                // Repeated headers are joined as HTTP reads them, so a forged copy left beside
                // the gateway's own value shows.
                let joined = match headers.get(&k).and_then(|old| old.as_str()) {
                    Some(old) => format!("{old}, {v}"),
                    None => v,
                };
                headers.insert(k, joined.into());
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        let echo = serde_json::json!({
            "method": method,
            "path": path,
            "host": headers.get("host"),
            "x-client-id": headers.get("x-client-id"),
            "x-subject": headers.get("x-subject"),
            "x-scope": headers.get("x-scope"),
            "x-forwarded-for": headers.get("x-forwarded-for"),
            "x-real-ip": headers.get("x-real-ip"),
            "x-forwarded-proto": headers.get("x-forwarded-proto"),
            "x-forwarded-host": headers.get("x-forwarded-host"),
            "forwarded": headers.get("forwarded"),
            "authorization_seen": headers.contains_key("authorization"),
        })
        .to_string();
        // One write per response: separate small writes meet Nagle and delayed ACKs (40 ms).
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            echo.len(),
            echo
        );
        out.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}
