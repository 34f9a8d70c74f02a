//! Composition tests: providers plugged into a host component with `wac-graph`, run under
//! wasmtime. One binary, as in every crate of this workspace.

mod compose;
