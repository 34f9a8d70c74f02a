//! Test support: temporary configs, the server process, a loopback origin and a tiny HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A browser User-Agent (not a bot).
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// The HMAC passphrase the test configs use.
pub const PASSPHRASE: &str = "test-passphrase";

/// `runtime.call_cpu_ms` and `runtime.call_timeout_ms` for every test that asserts an outcome
/// other than a budget: one hour, a budget no machine is slow or loaded enough to exhaust, so a
/// budget can never fire before the behaviour under test (a cold, loaded machine once made a 5 ms
/// deadline beat a memory cap). Only the tests proving a budget is enforced set a tight one.
pub const CALL_BUDGET_THAT_NEVER_FIRES_MS: u64 = 3_600_000;

/// How long the harness waits for a server to print its address. Startup compiles components on a
/// cold cache (in a debug build, beside the rest of the suite), so this only bounds a hang.
const SERVER_START_WAIT: Duration = Duration::from_secs(600);

/// How long the harness waits for a response. Only bounds a hang: no test asserts on it.
const RESPONSE_WAIT: Duration = Duration::from_secs(300);

/// How long [`Server::log_when`] waits for an expected log line. Only bounds a missing line.
pub const LOG_WAIT: Duration = Duration::from_secs(120);

/// A loopback port nothing listens on, for a server started with a port it is told (Viceroy's
/// `--addr`, valkey's `--port`) or for an address that must refuse connections.
///
/// Taken from below the kernel's ephemeral range (`ip_local_port_range`): a port the OS handed
/// out for `127.0.0.1:0` and then released can be handed out again, to another test's loopback
/// origin, before the server meant to have it binds it, and the test then talks to the wrong
/// server. Nothing binds port 0 into the range used here, and each call of this process takes
/// the next port (from an offset set by the process id), checked free by binding it.
pub fn unused_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low >= 12_000 {
        (10_000, ephemeral_low)
    } else {
        // An unusual range reaching down low: the ports above it instead.
        (61_000, 65_535)
    };
    let span = high - low;
    let offset = std::process::id() as usize * 97;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(low + (offset + n) % span) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// A fresh temporary directory for one test.
pub fn temp_dir(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-test-{}-{}-{label}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Path of a test component built by the host's build script.
pub fn component(env_value: &str) -> PathBuf {
    PathBuf::from(env_value)
}

/// Lowercase hex sha256 of a file.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("read component"),
    ))
}

/// The AOT cache shared by the servers of one test run (also exercises the cache).
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("gatehouse-test-cache-{}", std::process::id()))
}

/// Writes `config` into a temp dir and returns its path.
pub fn write_config(label: &str, config: &str) -> PathBuf {
    let dir = temp_dir(label);
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// Runs `gatehouse` with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .expect("run gatehouse")
}

/// The standard test config: origin, default country, bundled providers; `extra` is appended.
pub fn config(origin: &str, default_country: &str, extra: &str) -> String {
    let cache = cache_dir().display().to_string();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
# The tests' client is 127.0.0.1 and plays the CDN in front of Gatehouse, so its geo headers count.
trusted_proxies = ["127.0.0.1"]

[origin]
url = "{origin}"
# Never fires either: no test asserts the origin timeout, and none may race it.
timeout_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}

[runtime]
cache_dir = "{cache}"
# A budget that never fires (see `CALL_BUDGET_THAT_NEVER_FIRES_MS`): outcomes must not depend on
# machine speed. The budget tests set tight ones.
call_cpu_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}
call_timeout_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}

[geo]
default_country = "{default_country}"
provider = "header-geo"

[device]
provider = "ua-device"

{extra}
"#
    )
}

/// The `[ec]` section with the bundled HMAC provider.
pub fn hmac_ec() -> String {
    format!(
        r#"
[ec]
provider = "hmac"
cookie_domain = "example.test"

[ec.providers.hmac]
passphrase = "{PASSPHRASE}"
"#
    )
}

/// A running `gatehouse serve`.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    admin: Arc<Mutex<Option<SocketAddr>>>,
}

impl Server {
    /// Starts the server with `config` and waits until it listens.
    pub fn start(label: &str, config: &str) -> Self {
        Self::start_at(&write_config(label, config))
    }

    /// Starts the server with `config` and extra `serve` arguments.
    pub fn start_with_args(label: &str, config: &str, args: &[&str]) -> Self {
        Self::start_at_with_args(&write_config(label, config), args)
    }

    /// Starts the server with the config file at `path` and waits until it listens.
    pub fn start_at(path: &Path) -> Self {
        Self::start_at_with_args(path, &[])
    }

    /// Starts the server with the config file at `path` and extra `serve` arguments.
    pub fn start_at_with_args(path: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(path)
            .args(args)
            .env("GATEHOUSE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log_writer.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let admin = Arc::new(Mutex::new(None));
        let admin_writer = Arc::clone(&admin);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("gatehouse admin listening on http://") {
                    *admin_writer.lock().expect("admin") =
                        Some(addr.parse::<SocketAddr>().expect("admin address"));
                } else if let Some(addr) = line
                    .strip_prefix("gatehouse listening on http://")
                    .or_else(|| line.strip_prefix("gatehouse listening on https://"))
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("listen address"));
                }
            }
        });
        match rx.recv_timeout(SERVER_START_WAIT) {
            Ok(addr) => Self {
                child,
                addr,
                log,
                admin,
            },
            Err(_) => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                panic!("server did not start; log:\n{}", log.lock().expect("log"));
            }
        }
    }

    /// Sends `GET path` with `headers` from 127.0.0.1.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http_get_within(self.addr, path, headers, RESPONSE_WAIT)
    }

    /// Sends `GET path` with `headers` from 127.0.0.1; panics when no response arrives within `wait`.
    pub fn get_within(&self, path: &str, headers: &[(&str, &str)], wait: Duration) -> Response {
        http_get_within(self.addr, path, headers, wait)
    }

    /// The admin listener's address (`[admin] listen`); panics when none is announced within
    /// [`LOG_WAIT`].
    pub fn admin_addr(&self) -> SocketAddr {
        let started = Instant::now();
        loop {
            if let Some(addr) = *self.admin.lock().expect("admin") {
                return addr;
            }
            assert!(started.elapsed() < LOG_WAIT, "no admin listener announced");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log holds `needle` at least `count` times; panics with the log after 60 s.
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let start = Instant::now();
        while self.log().matches(needle).count() < count {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no `{needle}` (x{count}) in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(self.pid()).expect("pid")).expect("pid");
        rustix::process::kill_process(pid, signal).expect("send signal");
    }

    /// Waits up to `timeout` for the server to exit; its exit status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's log as soon as `ready` holds for it, or as it is after [`LOG_WAIT`]. A thread
    /// reads the server's stderr, so a line the server wrote before answering may not have been
    /// read yet when the answer arrives: assertions on the log wait for it instead of sleeping a
    /// fixed time (which a loaded machine can outlast).
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            let log = self.log();
            if ready(&log) || started.elapsed() > LOG_WAIT {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Response {
    /// All values of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The `Set-Cookie` value for cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.all("set-cookie")
            .into_iter()
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

/// Sends `raw` bytes as one request and parses the response.
pub fn http_raw(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(RESPONSE_WAIT))
        .expect("timeout");
    // The server may close before reading everything we sent; what it answered is what counts.
    let _ = stream.write_all(raw);
    // Read until the response is complete (by `Content-Length`) or the server closes: a request
    // without `Connection: close` keeps the connection open, and waiting for a timeout to end the
    // read would make the test as slow as the timeout.
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    while !response_complete(&out) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    parse_response(&out)
}

/// A minimal HTTP/1.1 GET with `Connection: close`, waiting as long as [`Server::get`] does.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    http_get_within(addr, path, headers, RESPONSE_WAIT)
}

/// Whether `raw` holds a whole response: its head and, when it declares one, its
/// `Content-Length` body.
fn response_complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let length = head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|length| raw.len() >= head_end + 4 + length)
}

/// A minimal HTTP/1.1 GET with `Connection: close`; panics when no response arrives within `wait`.
pub fn http_get_within(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    wait: Duration,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A loopback origin that answers every request with 200 and records the request heads.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Request heads received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    /// Starts the origin on a free loopback port.
    pub fn start() -> Self {
        Self::start_with_delay(Duration::ZERO)
    }

    /// Starts an origin that waits `delay` before each response.
    pub fn start_with_delay(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve_origin(stream, &seen, delay));
            }
        });
        Self { addr, requests }
    }

    /// `http://addr` for the config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve_origin(stream: TcpStream, seen: &Mutex<Vec<String>>, delay: Duration) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        if let Ok(mut seen) = seen.lock() {
            seen.push(head);
        }
        std::thread::sleep(delay);
        let body = "<html><body>origin page</body></html>";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nX-Origin: yes\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Compares `actual` with `tests/all/golden/<name>`, or rewrites it when `BLESS=1`.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/all/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some_and(|bless| bless == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("golden dir");
        std::fs::write(&path, actual).expect("golden file is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (run with BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} is out of date (run with BLESS=1 and review the diff)",
        path.display()
    );
}

/// The workspace root (for `examples/` and `permissions.yaml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A TCF v2 core string consenting to `purposes`, last updated at `updated_unix`.
pub fn tc_string(purposes: &[u8], updated_unix: u64) -> String {
    let mut bits = String::new();
    let mut push = |value: u64, width: usize| {
        for i in (0..width).rev() {
            bits.push(if value >> i & 1 == 1 { '1' } else { '0' });
        }
    };
    let letters = |code: &str| {
        code.bytes()
            .fold(0, |acc, b| acc << 6 | u64::from(b - b'A'))
    };
    let updated_ds = updated_unix * 10;
    push(2, 6); // version
    push(updated_ds, 36); // created
    push(updated_ds, 36); // last updated
    push(7, 12); // cmp id
    push(1, 12); // cmp version
    push(1, 6); // consent screen
    push(letters("EN"), 12); // consent language
    push(100, 12); // vendor list version
    push(4, 6); // policy version
    push(1, 1); // is service specific
    push(0, 1); // non-standard texts
    push(0b1100_0000_0000, 12); // special features 1 and 2
    let consents = purposes.iter().fold(0, |acc, &p| acc | 1 << (24 - p));
    push(consents, 24); // purpose consents
    push(0, 24); // purpose legitimate interests
    push(0, 1); // purpose one treatment
    push(letters("DE"), 12); // publisher cc
    push(1, 16); // vendor consents: max vendor id 1
    push(0, 1); // bitfield
    push(1, 1); // vendor 1 consents
    push(1, 16); // vendor LI: max vendor id 1
    push(0, 1); // bitfield
    push(0, 1);
    push(0, 12); // no publisher restrictions
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    while !bits.len().is_multiple_of(6) {
        bits.push('0');
    }
    bits.as_bytes()
        .chunks(6)
        .map(|c| {
            let v = c
                .iter()
                .fold(0usize, |acc, &b| acc << 1 | usize::from(b == b'1'));
            char::from(ALPHABET[v])
        })
        .collect()
}

/// [`tc_string`] consenting to every purpose, updated a day ago (well inside any consent expiry).
pub fn tc_full_consent_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tc_string(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], now - 86_400)
}
