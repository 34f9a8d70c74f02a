//! Test guest: an Edge Cookie provider that misbehaves on purpose, for the hosts' end-to-end tests.
//! It is built with `std`, so it also exercises the std route: its component imports the WASI 0.2
//! interfaces `std` uses, which the host links with a locked-down context.
//!
//! Its setting `mode` picks what `generate` does:
//!
//! | `mode`       | `generate` does                                                                  |
//! |--------------|----------------------------------------------------------------------------------|
//! | `loop`       | spins forever; the host must cut it off (epoch deadline)                         |
//! | `grow`       | allocates and touches 1 MiB chunks without bound until the memory limit traps it |
//! | `trap`       | executes `unreachable`                                                           |
//! | `set-cookie` | returns id `hostile-id` plus `Set-Cookie: evil=1` and `x-provider-debug: 1`      |
//! | `ok`         | returns id `hostile-ok` and no headers                                           |
//! | `reflect`    | returns id `hostile-reflect` and its whole evidence in `x-provider-debug`        |
//! | `flood`      | writes [`FLOOD_BYTES`] to stdout, then returns id `hostile-flood`                |
//! | `exit`       | calls `std::process::exit(3)`                                                    |
//! | `sleep`      | sleeps 30 s (a `wasi:clocks` subscription), then returns id `hostile-slept`      |
//!
//! A missing or unknown mode is a config error. The manifest comes from the settings too, so tests
//! can make it declare anything: `id` (default `hostile`), `version` (default this crate's),
//! `reads` (comma-separated: `client-ip`, `user-agent`, `path`, `query`, `ja4`,
//! `http2-fingerprint`, `header:NAME`), `permissions` (comma-separated, default
//! `store-on-device`) and `call_budget_ms`.

use std::time::Duration;

use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Header, Manifest, Read, Settings};

/// Bytes the `flood` mode writes to stdout.
pub const FLOOD_BYTES: usize = 1 << 20;

/// The misbehaviour selected by the setting `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `loop`: never return.
    Loop,
    /// `grow`: allocate memory without bound.
    Grow,
    /// `trap`: trap the instance.
    Trap,
    /// `set-cookie`: ask for headers the host must filter out.
    SetCookie,
    /// `ok`: behave, with a fixed id.
    Ok,
    /// `reflect`: echo the evidence into an allowlisted response header.
    Reflect,
    /// `flood`: flood stdout.
    Flood,
    /// `exit`: exit the process.
    Exit,
    /// `sleep`: try to block the host thread.
    Sleep,
}

/// Every mode, by its setting value.
const MODES: [(&str, Mode); 9] = [
    ("loop", Mode::Loop),
    ("grow", Mode::Grow),
    ("trap", Mode::Trap),
    ("set-cookie", Mode::SetCookie),
    ("ok", Mode::Ok),
    ("reflect", Mode::Reflect),
    ("flood", Mode::Flood),
    ("exit", Mode::Exit),
    ("sleep", Mode::Sleep),
];

/// Parses the value of `mode`.
///
/// # Errors
/// A message naming the `mode` key when the value is missing or names no mode.
pub fn parse_mode(value: Option<&str>) -> Result<Mode, String> {
    let value = value.ok_or_else(|| String::from("`mode`: missing"))?;
    MODES
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, mode)| *mode)
        .ok_or_else(|| {
            let names: Vec<_> = MODES.iter().map(|(n, _)| format!("`{n}`")).collect();
            format!(
                "`mode`: unknown mode `{value}`, expected one of {}",
                names.join(", ")
            )
        })
}

/// Parses the `reads` setting.
///
/// # Errors
/// A message naming `reads` for an unknown entry.
pub fn parse_reads(value: Option<&str>) -> Result<Vec<Read>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| match entry {
            "client-ip" => Ok(Read::ClientIp),
            "user-agent" => Ok(Read::UserAgent),
            "path" => Ok(Read::Path),
            "query" => Ok(Read::Query),
            "ja4" => Ok(Read::Ja4),
            "http2-fingerprint" => Ok(Read::Http2Fingerprint),
            other => match other.strip_prefix("header:") {
                Some(name) => Ok(Read::Header(name.into())),
                None => Err(format!("`reads`: unknown read `{other}`")),
            },
        })
        .collect()
}

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct HostileGuest;

impl EdgeCookieProvider for HostileGuest {
    fn describe(settings: &Settings) -> Result<Manifest, String> {
        let call_budget_ms = settings
            .get("call_budget_ms")
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("`call_budget_ms`: `{v}` is not a number"))
            })
            .transpose()?;
        Ok(Manifest {
            id: settings.get("id").unwrap_or("hostile").into(),
            version: settings
                .get("version")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .into(),
            required_permissions: settings
                .get("permissions")
                .unwrap_or("store-on-device")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect(),
            reads: parse_reads(settings.get("reads"))?,
            call_budget_ms,
        })
    }

    fn generate(
        settings: &Settings,
        evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let mode = parse_mode(settings.get("mode")).map_err(EcError::Config)?;
        Ok(misbehave(mode, &evidence))
    }
}

gatehouse_provider::export_edge_cookie_provider!(HostileGuest);

/// Carries out `mode`; `loop`, `grow`, `trap` and `exit` never return.
fn misbehave(mode: Mode, evidence: &Evidence) -> EcOutput {
    match mode {
        Mode::Loop => spin_forever(),
        Mode::Grow => grow_forever(),
        Mode::Trap => trap(),
        Mode::SetCookie => output(
            "hostile-id",
            vec![
                header("Set-Cookie", "evil=1"),
                header("x-provider-debug", "1"),
            ],
        ),
        Mode::Ok => output("hostile-ok", Vec::new()),
        Mode::Reflect => output(
            "hostile-reflect",
            vec![header("x-provider-debug", &reflect(evidence))],
        ),
        Mode::Flood => {
            use std::io::Write as _;
            let line = [b'F'; 1024];
            let mut stdout = std::io::stdout().lock();
            for _ in 0..FLOOD_BYTES / line.len() {
                // A host that refuses further output fails the write: keep flooding regardless.
                let _ = stdout.write_all(&line);
            }
            let _ = stdout.flush();
            output("hostile-flood", Vec::new())
        }
        Mode::Exit => std::process::exit(3),
        Mode::Sleep => {
            std::thread::sleep(Duration::from_secs(30));
            output("hostile-slept", Vec::new())
        }
    }
}

/// Everything in `evidence`, as printable ASCII for a response header.
pub fn reflect(evidence: &Evidence) -> String {
    format!("{evidence:?}").escape_default().to_string()
}

fn output(id: &str, headers: Vec<Header>) -> EcOutput {
    EcOutput {
        id: Some(id.into()),
        headers,
    }
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

/// An infinite loop the optimizer cannot delete: `black_box` makes every iteration observable.
fn spin_forever() -> ! {
    let mut iterations: u64 = 0;
    loop {
        iterations = std::hint::black_box(iterations.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks and writes to every wasm page (64 KiB) of each, keeping them all, until
/// the host's memory cap traps the growth. Uninitialised capacity and one write per wasm page keep
/// each chunk cheap (no memset), so the cap, not the deadline, is what stops the guest.
fn grow_forever() -> ! {
    const CHUNK: usize = 1 << 20;
    const WASM_PAGE: usize = 64 << 10;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
        for slot in chunk.spare_capacity_mut().iter_mut().step_by(WASM_PAGE) {
            slot.write(1);
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    panic!("hostile guest: `trap` mode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_mode_parses() {
        for (name, mode) in MODES {
            assert_eq!(parse_mode(Some(name)), Ok(mode));
        }
    }

    #[test]
    fn missing_or_unknown_mode_is_a_config_error_naming_the_key() {
        assert_eq!(parse_mode(None), Err("`mode`: missing".into()));
        let err = parse_mode(Some("LOOP")).expect_err("modes are case-sensitive");
        assert!(err.starts_with("`mode`: unknown mode `LOOP`"), "{err}");
    }

    #[test]
    fn reads_parse_including_named_headers() {
        let reads = parse_reads(Some("client-ip, header:X-Secret,ja4")).expect("valid");
        assert!(
            matches!(
                reads.as_slice(),
                [Read::ClientIp, Read::Header(name), Read::Ja4] if name == "X-Secret"
            ),
            "{reads:?}"
        );
        assert!(parse_reads(Some("everything")).is_err());
    }

    #[test]
    fn set_cookie_mode_asks_for_forbidden_headers() {
        let out = misbehave(Mode::SetCookie, &empty());
        assert_eq!(out.id.as_deref(), Some("hostile-id"));
        let headers: Vec<_> = out
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            headers,
            [("Set-Cookie", "evil=1"), ("x-provider-debug", "1")]
        );
    }

    #[test]
    fn reflect_mode_echoes_every_evidence_field_printably() {
        let mut evidence = empty();
        evidence.headers.push(header("x-seen", "v\u{e9}"));
        let out = misbehave(Mode::Reflect, &evidence);
        let value = &out.headers[0].value;
        assert!(value.contains("x-seen"), "{value}");
        assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{value}");
    }

    #[test]
    #[should_panic(expected = "trap")]
    fn trap_mode_does_not_return() {
        misbehave(Mode::Trap, &empty());
    }

    fn empty() -> Evidence {
        Evidence {
            client_ip: None,
            user_agent: None,
            headers: Vec::new(),
            path: None,
            query: None,
            ja4: None,
            http2_fingerprint: None,
        }
    }
}
