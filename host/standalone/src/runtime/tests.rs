//! Sandbox limits: a component that needs more than a pooling limit allows is refused naming that
//! limit's `[runtime]` key, not as "not a valid component".

use super::{Limits, LoadErrorReason, Sandbox};

fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(Limits {
        max_instances: 4,
        ..limits
    })
    .expect("sandbox")
}

fn refused_key(limits: Limits, wat: &str) -> String {
    let err = sandbox(limits)
        .compile(wat.as_bytes(), "probe", "ec.providers.probe")
        .expect_err("refused");
    assert!(
        matches!(err.reason, LoadErrorReason::PoolLimit { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&format!("`{}`", err.key)), "{text}");
    assert!(!text.contains("not a valid component"), "{text}");
    err.key
}

#[test]
fn too_many_core_instances_names_max_core_instances_per_component() {
    let limits = Limits {
        max_core_instances_per_component: 2,
        ..Limits::default()
    };
    let wat = "(component (core module $m) (core instance (instantiate $m)) \
               (core instance (instantiate $m)) (core instance (instantiate $m)))";
    assert_eq!(
        refused_key(limits, wat),
        "runtime.max_core_instances_per_component"
    );
}

#[test]
fn too_many_memories_names_max_memories_per_component() {
    let limits = Limits {
        max_memories_per_component: 1,
        ..Limits::default()
    };
    let wat = "(component (core module $m (memory 1)) (core instance (instantiate $m)) \
               (core instance (instantiate $m)))";
    assert_eq!(
        refused_key(limits, wat),
        "runtime.max_memories_per_component"
    );
}

#[test]
fn too_many_tables_names_max_tables_per_component() {
    let limits = Limits {
        max_tables_per_component: 1,
        ..Limits::default()
    };
    let wat = "(component (core module $m (table 1 funcref)) (core instance (instantiate $m)) \
               (core instance (instantiate $m)))";
    assert_eq!(refused_key(limits, wat), "runtime.max_tables_per_component");
}

#[test]
fn initial_memory_over_the_cap_names_memory_limit_mib() {
    let limits = Limits {
        memory_bytes: 1 << 20,
        ..Limits::default()
    };
    // 100 pages = 6.25 MiB initial memory.
    let wat = "(component (core module $m (memory 100)) (core instance (instantiate $m)))";
    assert_eq!(refused_key(limits, wat), "runtime.memory_limit_mib");
}

#[test]
fn the_defaults_load_a_component_with_many_core_instances() {
    // componentize-py output has ~14 core instances; the defaults must leave room.
    let instances = "(core instance (instantiate $m))".repeat(16);
    let wat = format!("(component (core module $m (memory 1)) {instances})");
    let limits = Limits {
        max_memories_per_component: 16,
        ..Limits::default()
    };
    sandbox(limits)
        .compile(wat.as_bytes(), "probe", "ec.providers.probe")
        .expect("16 core instances fit the default");
}
