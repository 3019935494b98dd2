//! A small HTTP server on 127.0.0.1 for what the service calls out to
//! (notification targets, Invoke actions): it keeps every request and
//! answers what the test says, by the request's number.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request received: its request line, headers (names in lower case) and body.
#[derive(Debug, Clone)]
pub struct Request {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

pub type Received = Arc<Mutex<Vec<Request>>>;

/// Starts a receiver; `answer(n)` is the status line and body of the n-th
/// request (from 1). Returns its `host:port` and what it receives.
pub async fn start(answer: fn(usize) -> (&'static str, &'static str)) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received: Received = Arc::default();
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let Some(request) = read(&mut socket).await else { return };
                let n = {
                    let mut all = kept.lock().unwrap();
                    all.push(request);
                    all.len()
                };
                let (status, body) = answer(n);
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (address, received)
}

async fn read(socket: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let (head, start) = loop {
        let n = socket.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buffer[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&data[..end]).into_owned(), end + 4);
        }
    };
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while data.len() < start + length {
        match socket.read(&mut buffer).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    Some(Request { line, headers, body: data[start..].to_vec() })
}

/// `sha256=` and the hex HMAC-SHA256 of `body` with `key`, made here (not
/// with the service's code) to check the service's signatures and sign
/// what it checks.
pub fn hmac(key: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag: String = ring::hmac::sign(&key, body).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={tag}")
}
