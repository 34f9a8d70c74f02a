//! A real `valkey-server` (or `redis-server`) on a free loopback port, with its own temp dir,
//! stopped when dropped. A missing binary FAILS the test, naming the package to install.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BINARIES: [&str; 2] = ["valkey-server", "redis-server"];

/// The first of `valkey-server`, `redis-server` found in the `PATH`-style list `search`.
pub fn find_server(search: &str) -> Result<PathBuf, String> {
    for name in BINARIES {
        for dir in std::env::split_paths(search) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(
        "neither `valkey-server` nor `redis-server` is installed; the valkey backend tests need \
         one: `apt-get install -y valkey-server` (or `redis-server` where valkey is not packaged)"
            .to_owned(),
    )
}

pub struct Server {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Server {
    /// Starts a server; panics (fails the test) when no binary is installed or it will not start.
    pub fn start() -> Self {
        let binary = find_server(&std::env::var("PATH").unwrap_or_default())
            .unwrap_or_else(|message| panic!("{message}"));
        // A port picked by the OS can be taken between release and bind: try a few.
        for _ in 0..5 {
            if let Some(server) = Self::try_start(&binary) {
                return server;
            }
        }
        panic!("`{}` did not start on a loopback port", binary.display());
    }

    fn try_start(binary: &Path) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None; // exited: most likely the port was taken
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server now (for "server went away" tests).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn missing_server_binary_fails_with_the_package_to_install() {
    let empty = tempfile::tempdir().expect("temp dir");
    let message = find_server(&empty.path().display().to_string()).expect_err("nothing there");
    assert!(
        message.contains("apt-get install -y valkey-server"),
        "{message}"
    );
}
