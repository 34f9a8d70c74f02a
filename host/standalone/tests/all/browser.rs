//! The client-side Edge Cookie flow in a real browser (issue 10, must-show 3): headless Debian
//! `chromium` driven by `playwright-core` (`tests/browser/ec-resolve.cjs`) loads the demo page
//! through the real server, the page loads `/_ts/ec.js`, the script posts its value to
//! `POST /_ts/api/v1/ec/resolve`, and the browser ends up holding `ts-ec`; with a TCF cookie
//! refusing purpose 1 set first, it does not.
//!
//! Needs `/usr/bin/chromium`, `node` and `playwright-core` (pinned in
//! `tests/browser/install-tools.sh`, which installs all three; `.ci/run` and the README's test
//! command run it). A missing tool fails the test with that instruction. Only
//! `GATEHOUSE_SKIP_BROWSER=1` skips it, loudly.
//!
//! The browser talks to `http://localhost:PORT` (the server binds 127.0.0.1): the Edge Cookie is
//! `Secure`, and Chromium stores a `Secure` cookie from plain HTTP only for `localhost`, which it
//! treats as a secure context.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gatehouse_core::identity::{IdentityRecord, IdentityStore, identity_key};
use gatehouse_store::RedbStore;

use crate::ec_resolve::TCF_REFUSES_STORAGE;
use crate::support::{Server, config, temp_dir, workspace_root};

const CHROMIUM: &str = "/usr/bin/chromium";

/// What the test needs besides the server: node and the playwright-core package directory.
struct BrowserTools {
    playwright_core: PathBuf,
}

impl BrowserTools {
    /// Finds the tools, or panics naming what is missing and how to install it.
    fn find() -> Self {
        let install = "run `tests/browser/install-tools.sh` (installs Debian's chromium, nodejs \
                       and npm, and the pinned playwright-core), or set GATEHOUSE_SKIP_BROWSER=1 \
                       to skip this test";
        assert!(
            Path::new(CHROMIUM).is_file(),
            "`{CHROMIUM}` is missing: {install}"
        );
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.as_ref().is_ok_and(|o| o.status.success()),
            "`node` is missing: {install}"
        );
        let version = pinned_playwright_core_version();
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let playwright_core = home
            .join(".cache/gatehouse-ci-tools")
            .join(format!("playwright-core-{version}"))
            .join("node_modules/playwright-core");
        assert!(
            playwright_core.join("package.json").is_file(),
            "playwright-core {version} is missing at `{}`: {install}",
            playwright_core.display()
        );
        Self { playwright_core }
    }

    /// Loads `base`/ in a fresh browser context (with `cookie` = `NAME=VALUE` set first) and
    /// returns what the driver printed: the resolve answer and the `ts-ec` cookie held.
    fn visit(&self, base: &str, cookie: Option<&str>) -> serde_json::Value {
        let script = workspace_root().join("tests/browser/ec-resolve.cjs");
        let output = Command::new("node")
            .arg(&script)
            .arg(base)
            .args(cookie)
            .env("PLAYWRIGHT_CORE", &self.playwright_core)
            .output()
            .expect("run node");
        assert!(
            output.status.success(),
            "the browser driver failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON line from the driver")
    }
}

/// `PLAYWRIGHT_CORE_VERSION=` in `tests/browser/install-tools.sh`: one place pins it.
fn pinned_playwright_core_version() -> String {
    let script = std::fs::read_to_string(workspace_root().join("tests/browser/install-tools.sh"))
        .expect("read install-tools.sh");
    script
        .lines()
        .find_map(|l| l.strip_prefix("PLAYWRIGHT_CORE_VERSION="))
        .expect("PLAYWRIGHT_CORE_VERSION= in install-tools.sh")
        .trim()
        .to_owned()
}

#[test]
fn headless_chromium_ends_up_holding_the_edge_cookie_unless_a_tcf_cookie_refuses_it() {
    if std::env::var("GATEHOUSE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "\n\n!!!!!!!! SKIPPED: the headless Chromium test of the client-side Edge Cookie \
             (GATEHOUSE_SKIP_BROWSER=1) !!!!!!!!\n\n"
        );
        return;
    }
    let tools = BrowserTools::find();
    let path = temp_dir("browser").join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            "builtin:demo",
            "US",
            "\n[ec]\nprovider = \"client-side\"\n\n[consent]\nmax_consent_age_days = 36500\n",
        ),
    )
    .expect("write config");
    let mut server = Server::start_at(&path);
    let base = format!("http://localhost:{}", server.addr.port());

    let held = tools.visit(&base, None);
    assert_eq!(held["status"], 200, "{held}");
    assert_eq!(held["body"]["edge_cookie"], "set", "{held}");
    let cookie = &held["cookie"];
    assert_eq!(cookie["httpOnly"], true, "{held}");
    assert_eq!(cookie["secure"], true, "{held}");
    assert_eq!(cookie["sameSite"], "Lax", "{held}");
    let value = cookie["value"].as_str().expect("the browser holds ts-ec");
    let (hex, suffix) = value.split_once('.').expect("<hex>.<suffix>");
    assert_eq!(hex.len(), 64, "{value}");
    assert_eq!(suffix.len(), 6, "{value}");

    let refusing = format!("euconsent-v2={TCF_REFUSES_STORAGE}");
    let refused = tools.visit(&base, Some(&refusing));
    assert_eq!(refused["status"], 200, "{refused}");
    assert_eq!(refused["body"]["edge_cookie"], "not-permitted", "{refused}");
    assert!(refused["cookie"].is_null(), "{refused}");

    server.signal(rustix::process::Signal::TERM);
    assert!(server.wait_exit(Duration::from_secs(120)).is_some());
    let store = RedbStore::open(path.with_file_name("gatehouse-store.redb")).expect("store");
    let record = store
        .get(&identity_key(value))
        .expect("store get")
        .map(|v| IdentityRecord::decode(&v.value).expect("record"));
    assert!(
        matches!(record, Some(IdentityRecord::Live(_))),
        "the browser's identity is stored: {record:?}"
    );
}
