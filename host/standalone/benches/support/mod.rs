//! What the server-level benches share: start the real `gatehouse serve` (the bench profile's
//! binary), a minimal blocking HTTP/1.1 client over one keep-alive connection, percentiles.
//! Each bench uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A browser User-Agent.
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// A child process killed (and reaped) when dropped.
pub struct Stop(pub Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gatehouse serve` with `config` written at `path`; stopped when the guard drops.
pub fn serve(path: &Path, config: &str) -> (Stop, SocketAddr) {
    std::fs::write(path, config).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--config"])
        .arg(path)
        .env("GATEHOUSE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gatehouse");
    let stdout = child.stdout.take().expect("stdout");
    let server = Stop(child);
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("gatehouse listening on http://")
                .map(str::to_owned)
        })
        .expect("listening line")
        .parse()
        .expect("address");
    (server, addr)
}

/// A keep-alive connection to `addr` with Nagle off.
pub fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::new(stream)
}

/// Reads one HTTP/1.1 message (head + `Content-Length` body); returns the status (0 for a
/// request) and the body.
pub fn read_message(reader: &mut BufReader<TcpStream>) -> Option<(u16, Vec<u8>)> {
    let mut length = 0;
    let mut status = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            if first {
                continue;
            }
            break;
        }
        if first && line.starts_with("HTTP/1.1 ") {
            status = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        }
        first = false;
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, body))
}

/// POSTs a JSON `body` to `path` with `headers` (each `Name: value`); the status and body.
pub fn post(
    reader: &mut BufReader<TcpStream>,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, Vec<u8>) {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: news.example\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .expect("send");
    read_message(reader).expect("a response")
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
