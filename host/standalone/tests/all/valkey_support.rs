//! A real `valkey-server` (or `redis-server`) on a free loopback port with its own temp dir,
//! stopped when dropped. A missing binary fails the test naming the package to install (as in
//! `host/store`'s suite).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::temp_dir;

/// A running Valkey server.
pub struct Valkey {
    child: Child,
    port: u16,
}

fn binary() -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in ["valkey-server", "redis-server"] {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "neither `valkey-server` nor `redis-server` is installed: `apt-get install -y valkey-server` \
         (or `redis-server` where valkey is not packaged)"
    );
}

impl Valkey {
    /// Starts a server (a few ports are tried: another process can take one before the bind).
    pub fn start() -> Self {
        let binary = binary();
        for _ in 0..5 {
            let port = crate::support::unused_port();
            let dir = temp_dir("valkey");
            let mut child = Command::new(&binary)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(&dir)
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn valkey");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("`{}` did not start on a loopback port", binary.display());
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// How many identity entries the server holds (keys under the default prefix).
    pub fn identity_keys(&self) -> usize {
        let client = redis::Client::open(self.url()).expect("client");
        let mut con = client.get_connection().expect("connect");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("gatehouse:k:*")
            .query(&mut con)
            .expect("KEYS");
        keys.len()
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
