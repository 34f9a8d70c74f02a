//! The three hosts a deployment runs on, launched the way a publisher would: `gatehouse serve`,
//! and the apps `gatehouse compose` builds served with the command it prints (Viceroy with the
//! printed `fastly.toml` for Fastly, `wasmtime serve` with the printed `-S` flags for wasi:http).
//!
//! The composed hosts need their runtimes: Viceroy 0.22 and the wasmtime CLI 48, which `.ci/run`
//! installs into `~/.cache/gatehouse-ci-tools/` and exports as `GATEHOUSE_VICEROY` and
//! `GATEHOUSE_WASMTIME`. Without the wasmtime CLI the tests fail, saying how to install it;
//! without Viceroy they fail in CI and, outside it, skip the Fastly host with a message.

use std::fmt;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, unused_port, write_config};

/// The Viceroy version `.ci/run` installs.
pub const VICEROY_VERSION: &str = "0.22.0";

/// How long a composed app may take to start listening (the runtime compiles it first).
const COMPOSED_START_WAIT: Duration = Duration::from_secs(180);

/// One of Gatehouse's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostKind {
    /// `gatehouse serve`.
    Standalone,
    /// The Fastly app `gatehouse compose --target fastly` builds, under Viceroy.
    Fastly,
    /// The wasi:http app `gatehouse compose --target wasi-http` builds, under `wasmtime serve`.
    WasiHttp,
}

impl HostKind {
    /// Every host.
    pub const ALL: [Self; 3] = [Self::Standalone, Self::Fastly, Self::WasiHttp];

    /// The name `tests/conformance/cases.toml` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Fastly => "fastly",
            Self::WasiHttp => "wasi-http",
        }
    }

    /// Whether this host's runtime is on this machine (only Viceroy may be missing, outside CI).
    pub fn available(self) -> bool {
        match self {
            Self::Standalone | Self::WasiHttp => true,
            Self::Fastly => viceroy().is_some(),
        }
    }

    /// Starts this host with the deployment `config` (a `gatehouse.toml` without `[server]
    /// listen`, which is added for the standalone host), with `env` set for the host's process.
    pub fn launch(self, label: &str, config: &str, env: &[(&str, &str)]) -> Running {
        match self {
            Self::Standalone => {
                assert!(
                    env.is_empty(),
                    "the standalone host takes its settings from the config"
                );
                let server = Server::start(label, &with_listen(config));
                Running {
                    addr: server.addr,
                    process: Process::Standalone(server),
                }
            }
            Self::Fastly => {
                let viceroy = viceroy().expect("Fastly is available (see HostKind::available)");
                serve_fastly(&viceroy, label, config, env)
            }
            Self::WasiHttp => serve_wasi_http(label, config, env),
        }
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running host; stopped when dropped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    process: Process,
}

enum Process {
    Standalone(#[allow(dead_code, reason = "kept alive until dropped")] Server),
    Child(Child),
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Process::Child(child) = &mut self.process {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `config` with `listen = "127.0.0.1:0"` in its `[server]` table (added when it has none).
fn with_listen(config: &str) -> String {
    if config.contains("[server]\n") {
        config.replacen("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n", 1)
    } else {
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")
    }
}

/// Runs `gatehouse compose --target TARGET` for `config` (with `env`); returns the app's path and
/// what compose printed. Panics when compose fails.
pub fn compose_app(
    label: &str,
    target: &str,
    config: &str,
    env: &[(&str, &str)],
) -> (PathBuf, String) {
    let config = write_config(label, config);
    let output = config.with_file_name("app.wasm");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["compose", "--target", target, "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&output);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run gatehouse compose");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "compose for {target} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (output, stdout)
}

/// The printed serve command's line, which starts with `program`.
fn printed_command<'a>(stdout: &'a str, program: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(program))
        .unwrap_or_else(|| panic!("compose prints the `{program}` command: {stdout}"))
}

/// Composes `config` for Fastly, writes the `fastly.toml` compose printed next to the app and
/// serves it with Viceroy as compose says, on a free port.
pub fn serve_fastly(viceroy: &Path, label: &str, config: &str, env: &[(&str, &str)]) -> Running {
    serve_fastly_edited(viceroy, label, config, env, |toml| toml)
}

/// [`serve_fastly`], with the printed `fastly.toml` passed through `edit` first.
pub fn serve_fastly_edited(
    viceroy: &Path,
    label: &str,
    config: &str,
    env: &[(&str, &str)],
    edit: fn(String) -> String,
) -> Running {
    let (app, stdout) = compose_app(label, "fastly", config, &[]);
    let fastly_toml = stdout
        .split_once("fastly.toml:\n")
        .and_then(|(_, rest)| rest.split_once("serve it with:"))
        .map(|(toml, _)| toml.to_owned())
        .unwrap_or_else(|| panic!("compose prints the fastly.toml: {stdout}"));
    let command = printed_command(&stdout, "viceroy serve");
    assert!(command.contains("-C fastly.toml"), "{command}");
    let dir = app.parent().expect("the app's directory");
    std::fs::write(dir.join("fastly.toml"), edit(fastly_toml)).expect("write fastly.toml");
    // Viceroy takes `--addr`, not port 0.
    let addr = SocketAddr::from(([127, 0, 0, 1], unused_port()));
    let mut cmd = Command::new(viceroy);
    cmd.current_dir(dir)
        .args(["serve", "-C", "fastly.toml", "--addr"])
        .arg(addr.to_string())
        .arg(&app)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().expect("spawn viceroy");
    // Viceroy compiles the component before it listens.
    let deadline = Instant::now() + COMPOSED_START_WAIT;
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("viceroy exited before listening: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("viceroy did not listen within {COMPOSED_START_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Running {
        addr,
        process: Process::Child(child),
    }
}

/// Composes `config` for wasi:http and serves it with the `wasmtime serve` flags compose printed
/// (`-S...`), each config variable's value taken from `env` by the variable's name.
pub fn serve_wasi_http(label: &str, config: &str, env: &[(&str, &str)]) -> Running {
    let (app, stdout) = compose_app(label, "wasi-http", config, &[]);
    let flags = printed_wasmtime_flags(&stdout, env);
    serve_wasi_http_app(&app, &flags)
}

/// The `-S` flags of the `wasmtime serve` command compose printed in `stdout`, with each
/// `-Sconfig-var=key="$VAR"` given the value of `VAR` in `env` (as the shell would).
pub fn printed_wasmtime_flags(stdout: &str, env: &[(&str, &str)]) -> Vec<String> {
    let command = printed_command(stdout, "wasmtime serve");
    command
        .split_whitespace()
        .filter(|f| f.starts_with("-S"))
        .map(|flag| match flag.split_once("=\"$") {
            Some((head, var)) => {
                let var = var.trim_end_matches('"');
                let value = env
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| *v)
                    .unwrap_or_else(|| panic!("no value for `{var}` of `{flag}`"));
                format!("{head}={value}")
            }
            None => flag.to_owned(),
        })
        .collect()
}

/// Serves the composed wasi:http `app` with `wasmtime serve FLAGS`, on a free port.
pub fn serve_wasi_http_app(app: &Path, flags: &[String]) -> Running {
    let mut cmd = Command::new(wasmtime_cli());
    cmd.arg("serve")
        .args(flags)
        .arg("--addr=127.0.0.1:0")
        .arg(app)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wasmtime serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // `Serving HTTP on http://127.0.0.1:PORT/`
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("wasmtime serve exited before listening");
        };
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches('/').parse().expect("listen address");
        }
    };
    // Keep draining stderr (the app's log) so wasmtime never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        addr,
        process: Process::Child(child),
    }
}

/// The value of a `Set-Cookie: NAME=VALUE; ...` line.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("a cookie value")
}

/// Whether the last request `origin` was sent carried `ts-ec=VALUE`.
pub fn origin_saw_cookie(origin: &crate::support::Origin, value: &str) -> bool {
    origin
        .requests
        .lock()
        .expect("origin log")
        .last()
        .is_some_and(|head| head.contains(&format!("ts-ec={value}")))
}

/// The wasmtime CLI, or a panic saying how to install it.
pub fn wasmtime_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEHOUSE_WASMTIME") {
        return PathBuf::from(path);
    }
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|home| home.join(".cache/gatehouse-ci-tools/wasmtime-cli/bin/wasmtime"));
    if let Some(path) = cached.filter(|p| p.exists()) {
        return path;
    }
    if Command::new("wasmtime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("wasmtime");
    }
    panic!(
        "the composed wasi:http app is served with the wasmtime CLI, which is not installed: run \
         `cargo install wasmtime-cli --version 48.0.8 --locked --root ~/.cache/gatehouse-ci-tools/wasmtime-cli` \
         (as .ci/run does), or set GATEHOUSE_WASMTIME to a wasmtime 48 binary"
    );
}

/// The Viceroy binary, or `None` (with a loud message) when it is absent outside CI.
pub fn viceroy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GATEHOUSE_VICEROY") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "GATEHOUSE_VICEROY names `{}`, which does not exist",
            path.display()
        );
        return Some(path);
    }
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|home| home.join(".cache/gatehouse-ci-tools/viceroy/bin/viceroy"));
    if let Some(path) = cached.filter(|p| p.exists()) {
        return Some(path);
    }
    let hint = format!(
        "the composed Fastly app is served with Viceroy, which is not installed: run \
         `cargo install viceroy --version ={VICEROY_VERSION} --locked --root ~/.cache/gatehouse-ci-tools/viceroy` \
         (as .ci/run does), or set GATEHOUSE_VICEROY"
    );
    assert!(std::env::var_os("CI").is_none(), "{hint}");
    eprintln!("\n!!! SKIPPED (not in CI): {hint}\n");
    None
}
