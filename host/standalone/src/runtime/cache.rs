//! The on-disk cache of AOT-compiled components, keyed by (component sha256, engine compatibility
//! hash) so a wasmtime upgrade or a config change that alters codegen never loads stale code.
//!
//! Loading a cached artifact runs native code from disk; the cache directory must be writable only
//! by the user running Gatehouse (it is created with mode 0700). A corrupt or incompatible entry
//! is recompiled and replaced.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Returns the compiled component, from the cache when possible.
///
/// # Errors
/// When `bytes` is not a valid component. Cache I/O problems are logged and ignored.
pub fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    digest: &str,
    engine_hash: &str,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    let path = dir.join(format!("{digest}-{engine_hash}.cwasm"));
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` below into a directory only this
        // user can write, keyed by the component digest and the engine's compatibility hash.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::warn!(dir = %dir.display(), "cannot write the component cache: {e:#}");
    }
    Ok(component)
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let serialized = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
