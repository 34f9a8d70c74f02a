//! The on-disk cache of AOT-compiled components, keyed by (component sha256, engine compatibility
//! hash) so a wasmtime upgrade or a config change that alters codegen never loads stale code.
//!
//! Loading a cached artifact runs native code from disk, so the cache is never trusted by file
//! name:
//! - Each entry is bound to the component it was compiled from: the file starts with a header
//!   holding the sha256 of the source component and the sha256 of the compiled artifact. Before
//!   use both are checked (the source digest against the digest of the component being loaded,
//!   the artifact digest against the bytes read); on any mismatch the entry is ignored, the
//!   component recompiled and the entry replaced. Swapping two entries' files therefore makes
//!   the server recompile, never run one provider's code under another's pinned digest.
//! - The directory must be owned by the user running Gatehouse and writable by nobody else
//!   (created with mode 0700). An existing directory that others can write, or that belongs to
//!   someone else, is not used: the cache is disabled with a warning and components are compiled
//!   in memory.
//!
//! The artifact is deserialized from the verified bytes in memory, not re-read from disk, so the
//! file cannot change between the check and the use.
//!
//! The cache is bounded (`runtime.cache_max_mb`): an entry's modification time is refreshed when
//! it is used, and after a new entry is written the least recently used entries are removed until
//! the cache fits. Entries of an older wasmtime (another engine hash) or of providers no longer
//! configured therefore age out instead of piling up across upgrades.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// File magic and format version of a cache entry.
const MAGIC: &[u8; 8] = b"GHCWASM1";

/// Header length: magic, source digest, artifact digest.
const HEADER_LEN: usize = MAGIC.len() + 32 + 32;

/// Returns the compiled component, from the cache when a verified entry exists.
///
/// # Errors
/// When `bytes` is not a valid component. Cache I/O problems are logged and ignored.
pub fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    digest: &str,
    engine_hash: &str,
    cache_dir: Option<&Path>,
    max_bytes: u64,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir.filter(|dir| usable_dir(dir)) else {
        return Component::new(engine, bytes);
    };
    let source_digest: [u8; 32] = Sha256::digest(bytes).into();
    let path = dir.join(format!("{digest}-{engine_hash}.cwasm"));
    if let Ok(file) = std::fs::read(&path) {
        match verified_artifact(&file, &source_digest) {
            Some(artifact) => {
                // SAFETY: `artifact` was produced by `Component::serialize` for exactly this
                // component (its source digest is bound into the verified header, and the artifact
                // digest matches), in a directory only this user can write. Deserializing from
                // memory means the bytes checked are the bytes used.
                #[allow(unsafe_code)]
                match unsafe { Component::deserialize(engine, artifact) } {
                    Ok(component) => {
                        touch(&path);
                        return Ok(component);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}");
                    }
                }
            }
            None => tracing::warn!(
                path = %path.display(),
                "ignoring a cache entry that is not bound to this component; recompiling"
            ),
        }
    }
    let component = Component::new(engine, bytes)?;
    match store(dir, &path, &source_digest, &component) {
        Ok(()) => prune(dir, &path, max_bytes),
        Err(e) => tracing::warn!(dir = %dir.display(), "cannot write the component cache: {e:#}"),
    }
    Ok(component)
}

/// Marks an entry as just used (best effort: a read-only cache still works, it just ages).
fn touch(path: &Path) {
    let now = SystemTime::now();
    if let Err(e) = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(now))
    {
        tracing::debug!(path = %path.display(), "cannot refresh a cache entry's time: {e}");
    }
}

/// Removes the least recently used entries (`*.cwasm`, oldest modification time first) until the
/// entries left add up to at most `max_bytes`. `keep`, the entry just written, is never removed,
/// even when it alone is over the cap. Other files in the directory are left alone.
fn prune(dir: &Path, keep: &Path, max_bytes: u64) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot list the component cache: {e}");
            return;
        }
    };
    let mut found: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"))
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    entry.path(),
                )
            })
        })
        .collect();
    // Newest first; the entry just written counts first whatever its clock says.
    found.sort_by_key(|(modified, _, path)| std::cmp::Reverse((path == keep, *modified)));
    let mut total = 0u64;
    for (_, len, path) in found {
        total = total.saturating_add(len);
        if total > max_bytes && path != keep {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "component cache entry removed (`runtime.cache_max_mb`)")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot remove a component cache entry: {e}")
                }
            }
        }
    }
}

/// The artifact inside a cache file, when its header binds it to `source_digest` and its digest
/// matches.
fn verified_artifact<'a>(file: &'a [u8], source_digest: &[u8; 32]) -> Option<&'a [u8]> {
    let (header, artifact) = file.split_at_checked(HEADER_LEN)?;
    let (magic, digests) = header.split_at(MAGIC.len());
    let (source, artifact_digest) = digests.split_at(32);
    (magic == MAGIC
        && source == source_digest
        && artifact_digest == Sha256::digest(artifact).as_slice())
    .then_some(artifact)
}

fn store(
    dir: &Path,
    path: &Path,
    source_digest: &[u8; 32],
    component: &Component,
) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let artifact = component.serialize()?;
    let mut file = Vec::with_capacity(HEADER_LEN + artifact.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(source_digest);
    file.extend_from_slice(&Sha256::digest(&artifact));
    file.extend_from_slice(&artifact);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, file)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Whether the cache directory may be used: absent (it will be created private), or owned by this
/// user and writable by nobody else. Logs why not.
#[cfg(unix)]
fn usable_dir(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "component cache disabled: {e}");
            return false;
        }
    };
    let uid = geteuid();
    let problem = if !meta.is_dir() {
        Some("it is not a directory")
    } else if meta.uid() != uid {
        Some("it belongs to another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("other users can write to it")
    } else {
        None
    };
    if let Some(problem) = problem {
        tracing::warn!(
            dir = %dir.display(),
            "component cache disabled (`runtime.cache_dir`): {problem}; compiling in memory"
        );
        return false;
    }
    true
}

#[cfg(not(unix))]
fn usable_dir(_dir: &Path) -> bool {
    true
}

// SAFETY: POSIX `geteuid` takes nothing, has no preconditions and cannot fail, so it is declared
// `safe` to call.
#[cfg(unix)]
#[allow(unsafe_code)]
unsafe extern "C" {
    safe fn geteuid() -> u32;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entries_go_when_the_cache_is_over_its_cap() {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-cache-prune-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let base = SystemTime::now() - std::time::Duration::from_secs(3600);
        let entry = |name: &str, len: usize, age_secs: u64| {
            let path = dir.join(name);
            std::fs::write(&path, vec![0u8; len]).expect("write entry");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(base - std::time::Duration::from_secs(age_secs))
                .expect("set time");
            path
        };
        let oldest = entry("a.cwasm", 400, 300);
        let middle = entry("b.cwasm", 400, 200);
        let newest = entry("c.cwasm", 400, 100);
        let other = entry("notes.txt", 5000, 1000);
        // Written just now but with an old clock: still kept, and counted first.
        let written = entry("d.cwasm", 400, 10_000);
        // `b` was used since: it is now the most recently used of the three.
        touch(&middle);

        prune(&dir, &written, 1000);

        assert!(written.exists(), "the entry just written stays");
        assert!(middle.exists(), "the entry used last stays");
        assert!(
            !newest.exists() && !oldest.exists(),
            "the others go, least recent first"
        );
        assert!(other.exists(), "files that are not entries are left alone");

        // A cap that holds everything removes nothing.
        prune(&dir, &written, u64::MAX);
        assert!(written.exists() && middle.exists());
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn an_entry_is_used_only_for_the_component_it_was_compiled_from() {
        let source: [u8; 32] = Sha256::digest(b"component a").into();
        let other: [u8; 32] = Sha256::digest(b"component b").into();
        let artifact = b"native code";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&source);
        file.extend_from_slice(&Sha256::digest(artifact));
        file.extend_from_slice(artifact);
        assert_eq!(verified_artifact(&file, &source), Some(&artifact[..]));
        assert_eq!(verified_artifact(&file, &other), None, "swapped entry");
        let mut tampered = file.clone();
        *tampered.last_mut().expect("non-empty") ^= 1;
        assert_eq!(verified_artifact(&tampered, &source), None, "edited code");
        assert_eq!(verified_artifact(&file[..10], &source), None, "truncated");
    }
}
