//! A minimal client of the room API over plain HTTP/1.1, for `confab room create` and tests.
//!
//! One request per connection (`Connection: close`), bounded in time and in response size.
//! HTTPS servers are reached with `curl` instead (README); the CLI says so.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a whole request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response read, in bytes.
const MAX_RESPONSE: u64 = 1 << 20;

/// Why a call failed before an HTTP status came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not an `http://host:port` base URL.
    #[error("the server URL must look like http://host:port (for https use curl; see README)")]
    Url,
    /// Could not connect, send or read.
    #[error("cannot reach the server: {0}")]
    Io(#[from] std::io::Error),
    /// Took longer than the timeout.
    #[error("the server did not answer within 10 s")]
    Timeout,
    /// Not an HTTP response.
    #[error("the server's answer is not HTTP")]
    Malformed,
}

/// A response: status and body (JSON when the body is JSON, else `null`).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The parsed body.
    pub body: serde_json::Value,
}

/// Sends `method path` to the server at `base` (`http://host:port`), with the bearer `key`
/// and JSON `body` if given.
pub async fn call(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<Answer, ClientError> {
    tokio::time::timeout(TIMEOUT, call_inner(base, method, path, key, body))
        .await
        .map_err(|_| ClientError::Timeout)?
}

async fn call_inner(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<Answer, ClientError> {
    let host = base
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or(ClientError::Url)?;
    let mut stream = TcpStream::connect(host).await?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    stream.write_all(req.as_bytes()).await?;
    let mut raw = vec![];
    stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Answer, ClientError> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or(ClientError::Malformed)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::Malformed)?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body_text = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let body = serde_json::from_str(&body_text).unwrap_or(serde_json::Value::Null);
    Ok(Answer { status, body })
}

/// Joins a chunked body's chunks (sizes in hex on their own lines).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let a = parse(b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n").expect("ok");
        assert_eq!(a.status, 201);
        assert_eq!(a.body["a"], 1);
        let a = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n")
            .expect("ok");
        assert_eq!(a.body["b"], 2);
        assert!(parse(b"garbage").is_err());
    }
}
