//! The proof that `gatehouse:provider@0.2.0` is statically composable: a provider component is
//! plugged into a small host component (`tests/guests/compose-caller`, which imports
//! `gatehouse:provider/edge-cookie@0.2.0` and exports `call`) with `wac-graph`, and the single
//! composed component runs under plain wasmtime, with no Gatehouse host code involved.

use std::collections::BTreeSet;

use gatehouse_compose_tests::{ComposeError, compose};
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const EDGE_COOKIE: &str = "gatehouse:provider/edge-cookie@0.2.0";
const CALLER: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_COMPOSE_CALLER");
const WORLD_ONLY_PROVIDER: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_COMPOSE_EC");
const STD_RUST_EXAMPLE: &str = env!("GATEHOUSE_EXAMPLE_VENDOR_RUST");

/// The fixed wall-clock time and random `u64` the hand-written imports return.
const NOW_SECS: u64 = 1_700_000_000;
const RANDOM_U64: u64 = 0x0123_4567_89ab_cdef;

/// `call`'s signature: settings and current cookie in; id and `name: value` headers out.
type CallArgs<'a> = (Vec<(String, String)>, Option<&'a str>);
type CallResult = (Result<(Option<String>, Vec<String>), String>,);

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A `wasi:clocks/wall-clock` `datetime` record.
fn datetime(seconds: u64, nanoseconds: u32) -> Val {
    Val::Record(vec![
        ("seconds".to_string(), Val::U64(seconds)),
        ("nanoseconds".to_string(), Val::U32(nanoseconds)),
    ])
}

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).expect("engine")
}

fn import_names(engine: &Engine, component: &Component) -> BTreeSet<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn call<T: 'static>(
    store: &mut Store<T>,
    instance: &wasmtime::component::Instance,
    settings: &[(&str, &str)],
    current: Option<&str>,
) -> Result<(Option<String>, Vec<String>), String> {
    let func = instance
        .get_typed_func::<CallArgs<'_>, CallResult>(&mut *store, "call")
        .expect("the composed component exports `call`");
    let settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (result,) = func.call(&mut *store, (settings, current)).expect("call");
    result
}

#[test]
fn a_world_only_provider_composes_into_a_host_component_and_runs_under_wasmtime() {
    let composed = compose(&read(CALLER), &read(WORLD_ONLY_PROVIDER), EDGE_COOKIE)
        .expect("the provider composes");
    let engine = engine();
    let component = Component::new(&engine, &composed).expect("the composition is a component");

    // The provider's import of its world and the host's import of the provider are resolved
    // inside the composition: what remains is exactly the published world's imports.
    assert_eq!(
        import_names(&engine, &component),
        BTreeSet::from([
            "gatehouse:provider/types@0.2.0".to_string(),
            "wasi:clocks/wall-clock@0.2.6".to_string(),
            "wasi:random/random@0.2.6".to_string(),
        ])
    );

    // Plain wasmtime, with the two world imports written by hand: no Gatehouse host code.
    let mut linker = Linker::<()>::new(&engine);
    linker
        .instance("gatehouse:provider/types@0.2.0")
        .expect("types instance");
    let mut random = linker
        .instance("wasi:random/random@0.2.6")
        .expect("random instance");
    random
        .func_wrap("get-random-u64", |_, (): ()| Ok((RANDOM_U64,)))
        .expect("get-random-u64");
    random
        .func_wrap("get-random-bytes", |_, (len,): (u64,)| {
            Ok((vec![0x5a_u8; usize::try_from(len).unwrap_or(0)],))
        })
        .expect("get-random-bytes");
    let mut clock = linker
        .instance("wasi:clocks/wall-clock@0.2.6")
        .expect("clock instance");
    clock
        .func_new("now", |_, _, _, results| {
            results[0] = datetime(NOW_SECS, 0);
            Ok(())
        })
        .expect("now");
    clock
        .func_new("resolution", |_, _, _, results| {
            results[0] = datetime(0, 1);
            Ok(())
        })
        .expect("resolution");

    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate(&mut store, &component)
        .expect("instantiate");
    let minted = call(&mut store, &instance, &[("prefix", "gh")], None);
    assert_eq!(
        minted,
        Ok((
            Some(format!("gh-{NOW_SECS}-{RANDOM_U64:016x}")),
            vec!["x-compose-ec: minted".to_string()]
        ))
    );
    let kept = call(&mut store, &instance, &[("prefix", "gh")], Some("gh-1-2"));
    assert_eq!(
        kept,
        Ok((
            Some("gh-1-2".to_string()),
            vec!["x-compose-ec: kept".to_string()]
        ))
    );
    // The provider's own error crosses the composition as a value.
    let refused = call(&mut store, &instance, &[], None);
    assert_eq!(refused, Err("config: `prefix`: missing".to_string()));
}

/// State for the std example: WASI with nothing granted.
struct LockedDown {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for LockedDown {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

#[test]
fn the_std_rust_example_composes_and_keeps_the_std_wasi_imports() {
    let composed = compose(&read(CALLER), &read(STD_RUST_EXAMPLE), EDGE_COOKIE)
        .expect("the std example composes");
    let engine = engine();
    let component = Component::new(&engine, &composed).expect("the composition is a component");

    // What a host must offer a composed std Rust provider: the world's imports plus the WASI
    // interfaces Rust's std links (stdio, exit, environment, monotonic clock), never files or
    // sockets. Listed here so a toolchain change that adds an import fails this test.
    let expected: BTreeSet<String> = [
        "gatehouse:provider/types@0.2.0",
        "wasi:cli/environment@0.2.6",
        "wasi:cli/exit@0.2.6",
        "wasi:cli/stderr@0.2.6",
        "wasi:cli/stdin@0.2.6",
        "wasi:cli/stdout@0.2.6",
        "wasi:cli/terminal-input@0.2.6",
        "wasi:cli/terminal-output@0.2.6",
        "wasi:cli/terminal-stderr@0.2.6",
        "wasi:cli/terminal-stdin@0.2.6",
        "wasi:cli/terminal-stdout@0.2.6",
        "wasi:clocks/monotonic-clock@0.2.6",
        "wasi:clocks/wall-clock@0.2.6",
        "wasi:io/error@0.2.6",
        "wasi:io/poll@0.2.6",
        "wasi:io/streams@0.2.6",
        "wasi:random/random@0.2.6",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(import_names(&engine, &component), expected);

    // wasmtime-wasi with a context that grants nothing: no preopens, sockets, env or args.
    let mut linker = Linker::<LockedDown>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    linker
        .instance("gatehouse:provider/types@0.2.0")
        .expect("types instance");
    let mut store = Store::new(
        &engine,
        LockedDown {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        },
    );
    let instance = linker
        .instantiate(&mut store, &component)
        .expect("instantiate");
    let settings = [("secret", "a-secret-of-at-least-16-bytes")];
    let (id, headers) = call(&mut store, &instance, &settings, None).expect("minted");
    let id = id.expect("an id");
    assert!(id.starts_with("v1."), "{id}");
    assert_eq!(headers, vec!["x-example-ec: minted".to_string()]);
    let kept = call(&mut store, &instance, &settings, Some(&id));
    assert_eq!(
        kept,
        Ok((Some(id.clone()), vec!["x-example-ec: kept".to_string()]))
    );
}

#[test]
fn composing_a_component_without_the_provider_export_names_the_interface() {
    // The caller exports `call`, not the provider interface.
    let err = compose(&read(CALLER), &read(CALLER), EDGE_COOKIE).expect_err("no export");
    assert!(
        matches!(err, ComposeError::ProviderExport { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("the provider does not export `{EDGE_COOKIE}`")
    );
}

#[test]
fn composing_into_a_host_that_does_not_import_the_interface_is_refused() {
    // The provider imports only its world, so it cannot take an edge-cookie provider.
    let err = compose(
        &read(WORLD_ONLY_PROVIDER),
        &read(WORLD_ONLY_PROVIDER),
        EDGE_COOKIE,
    )
    .expect_err("no import");
    assert!(matches!(err, ComposeError::Plug { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("the host component cannot take the provider's `{EDGE_COOKIE}`")
    );
}

#[test]
fn composing_bytes_that_are_not_a_component_is_a_parse_error() {
    let err = compose(&read(CALLER), b"\0asm not really", EDGE_COOKIE).expect_err("garbage");
    assert!(
        matches!(
            err,
            ComposeError::Parse {
                role: "provider",
                ..
            }
        ),
        "{err:?}"
    );
}
