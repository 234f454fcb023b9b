//! Compiling components, with an on-disk cache of the compiled code.
//!
//! Compiling a component takes tens to hundreds of milliseconds; loading a
//! compiled one takes well under one. Entries are keyed by the component's
//! SHA-256 and the engine's compatibility hash (wasmtime version, target and
//! settings), and end with an HMAC-SHA256 tag over that key and the code,
//! made with a secret of the cache's own (`cache.key`, 32 random bytes,
//! owner-only). Loading compiled code means trusting it to be what wasmtime
//! produced (`Component::deserialize` is `unsafe`), so the tag is checked,
//! in constant time, before anything is deserialized: an entry that is
//! unreadable, corrupted, forged (written by someone without the key, or
//! another component's entry moved into place) or from another engine is
//! discarded and recompiled, never loaded.
//!
//! Entries no deployment needs any more are removed by [`CompileCache::retain`].

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const TAG_LEN: usize = 32;
const KEY_LEN: usize = 32;
/// The key's file in the cache folder.
const KEY_FILE: &str = "cache.key";
/// Separates what the tag covers, so no field can run into the next.
const TAG_DOMAIN: &[u8] = b"elements compiled component v1\0";

type HmacSha256 = Hmac<Sha256>;

/// Where a compiled component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded from the cache.
    Cached,
    /// Compiled (no entry yet).
    Compiled,
    /// Compiled after discarding a bad entry, for the reason given.
    Recompiled(String),
}

/// The compiled-code cache in one folder.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .field("engine_key", &self.engine_key)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a component, as lowercase hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The binary form of `bytes` (a component in binary or text format), once
/// it is checked against the bounds of what a deploy compiles: at most
/// `max_component_bytes` (text and binary form), no function body over
/// `max_function_bytes`. The compiler's memory and time grow with the code
/// it compiles, the largest function above all; this refuses the outsized
/// before any of it is spent. The error says which bound was crossed.
pub fn within_bounds<'a>(
    bytes: &'a [u8],
    max_component_bytes: usize,
    max_function_bytes: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, BoundsError> {
    let too_large = |len: usize| {
        BoundsError::TooLarge(format!(
            "the component is {len} bytes, over the limit of {max_component_bytes} (max_component_bytes)"
        ))
    };
    if bytes.len() > max_component_bytes {
        return Err(too_large(bytes.len()));
    }
    let binary = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        std::borrow::Cow::Owned(
            wat::parse_bytes(bytes)
                .map_err(|e| BoundsError::Invalid(e.to_string()))?
                .into_owned(),
        )
    };
    if binary.len() > max_component_bytes {
        return Err(too_large(binary.len()));
    }
    // Walks nested modules too; only reads section headers and sizes.
    for payload in wasmparser::Parser::new(0).parse_all(&binary) {
        if let wasmparser::Payload::CodeSectionEntry(body) =
            payload.map_err(|e| BoundsError::Invalid(e.to_string()))?
        {
            let len = body.range().len();
            if len > max_function_bytes {
                return Err(BoundsError::TooLarge(format!(
                    "a function body is {len} bytes, over the limit of {max_function_bytes} (max_function_bytes)"
                )));
            }
        }
    }
    Ok(binary)
}

/// Whether instantiating `binary` (a checked component, see
/// [`within_bounds`]) runs any of its code: a core module's or the
/// component's start function. Without one, instantiation only sets up
/// memories, tables and globals from constants, which ends on its own.
pub fn runs_code_when_instantiated(binary: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(binary).any(|payload| {
        matches!(
            payload,
            Ok(wasmparser::Payload::StartSection { .. } | wasmparser::Payload::ComponentStartSection { .. })
                | Err(_)
        )
    })
}

/// Why [`within_bounds`] refused a component.
#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    /// Over a bound.
    #[error("{0}")]
    TooLarge(String),
    /// Not parseable as WebAssembly.
    #[error("{0}")]
    Invalid(String),
}

/// What [`CompileCache::retain`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed.
    pub entries: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl CompileCache {
    /// The cache in `dir` for code compiled by `engine`, creating the folder
    /// (owner-only) and its key when they don't exist yet.
    ///
    /// Fails when the key file exists but is not a regular file of exactly
    /// 32 bytes that only its owner may read: a key others can read (or
    /// replace) would let them forge native code the server runs.
    pub fn open(engine: &Engine, dir: impl Into<PathBuf>) -> io::Result<CompileCache> {
        let dir = dir.into();
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        create_private_dir(&dir)?;
        let key = load_or_create_key(&dir)?;
        Ok(CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
            key,
        })
    }

    /// The entry file for a component with this content hash.
    pub fn entry_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled form of `bytes` (a component in binary or text format),
    /// from the cache when a sound entry exists.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> wasmtime::Result<(Component, Outcome)> {
        let path = self.entry_path(hash);
        let mut outcome = Outcome::Compiled;
        match std::fs::read(&path) {
            Ok(entry) => match self.load_entry(engine, hash, &entry) {
                Ok(component) => {
                    // Used now: the sweep spares entries used recently.
                    touch(&path);
                    return Ok((component, Outcome::Cached));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "discarding compiled-code cache entry");
                    let _ = std::fs::remove_file(&path);
                    outcome = Outcome::Recompiled(reason);
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => outcome = Outcome::Recompiled(format!("unreadable: {e}")),
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, hash, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compiled-code cache entry");
        }
        Ok((component, outcome))
    }

    /// The tag of an entry for component `hash` holding `code`.
    fn mac(&self, hash: &str, code: &[u8]) -> HmacSha256 {
        // A key of any length is accepted by HMAC; ours is 32 bytes.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(TAG_DOMAIN);
        mac.update(self.engine_key.as_bytes());
        mac.update(b"\0");
        mac.update(hash.as_bytes());
        mac.update(b"\0");
        mac.update(code);
        mac
    }

    fn store(&self, path: &Path, hash: &str, component: &Component) -> wasmtime::Result<()> {
        let mut code = component.serialize()?;
        let tag = self.mac(hash, &code).finalize().into_bytes();
        code.extend_from_slice(&tag);
        create_private_dir(&self.dir)?;
        // Write then rename, so a reader never sees half an entry.
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", uuid::Uuid::new_v4(), std::process::id()));
        write_private(&tmp, &code)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(())
    }

    fn load_entry(&self, engine: &Engine, hash: &str, entry: &[u8]) -> Result<Component, String> {
        if entry.len() <= TAG_LEN {
            return Err("truncated".into());
        }
        let (code, tag) = entry.split_at(entry.len() - TAG_LEN);
        // `verify_slice` compares in constant time.
        self.mac(hash, code)
            .verify_slice(tag)
            .map_err(|_| "authentication failed (corrupted or forged)".to_owned())?;
        // SAFETY: `deserialize` trusts its input to be code wasmtime produced.
        // The entry's tag was made with this cache's secret key, over this
        // component's hash, this engine's key and these exact bytes, right
        // after `serialize` wrote them; wasmtime checks the engine's
        // configuration again.
        unsafe { Component::deserialize(engine, code) }.map_err(|e| format!("incompatible: {e:#}"))
    }

    /// Removes the entries of components not in `keep` (content hashes),
    /// and entries of other engines, that nothing used for `grace`;
    /// also temporary files of writes that died. The grace spares what
    /// another server sharing this folder just compiled or loaded.
    pub fn retain(&self, keep: &BTreeSet<String>, grace: Duration) -> io::Result<Swept> {
        let mut swept = Swept::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let needed = if let Some(stem) = file_name.strip_suffix(".cwasm") {
                let (hash, engine) = stem.rsplit_once('-').unwrap_or((stem, ""));
                engine == self.engine_key && keep.contains(hash)
            } else if file_name.starts_with('.') && file_name.ends_with(".tmp") {
                false
            } else {
                continue;
            };
            if needed {
                continue;
            }
            let path = entry.path();
            // Read the time just before removing: a load touching the entry
            // meanwhile keeps it.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if idle < grace {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    swept.entries += 1;
                    swept.bytes += meta.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(swept)
    }
}

/// Marks an entry used now. Best effort: a failure only makes the entry
/// look older to the sweep.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Creates `dir` (and its parents) owner-only: the cache holds native code
/// the server will run, and its key.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a new owner-only file; fails if `path` exists.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

/// The cache's key, made on first use. Two servers starting on one fresh
/// folder agree on one key: each writes a candidate and links it into place,
/// which only the first one does; then both read what is there.
fn load_or_create_key(dir: &Path) -> io::Result<[u8; KEY_LEN]> {
    let path = dir.join(KEY_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(format!("no randomness available: {e}")))?;
        let tmp = dir.join(format!(".{}.{}.tmp", uuid::Uuid::new_v4(), std::process::id()));
        write_private(&tmp, &key)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let meta = std::fs::symlink_metadata(&path)?;
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the compiled-code cache key {} {why}; remove it (the cache is then rebuilt)",
                path.display()
            ),
        )
    };
    if !meta.file_type().is_file() {
        return Err(bad("is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(
                "may be read or written by others than its owner (want mode 0600)",
            ));
        }
    }
    let bytes = std::fs::read(&path)?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| bad("is not 32 bytes long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_functions_are_found_in_nested_modules() {
        let binary = |text: &str| wat::parse_str(text).expect("valid");
        assert!(!runs_code_when_instantiated(&binary(
            r#"(component (core module $m (func (export "f"))) (core instance (instantiate $m)))"#
        )));
        assert!(runs_code_when_instantiated(&binary(
            r#"(component (core module $m (func $f) (start $f)) (core instance (instantiate $m)))"#
        )));
        assert!(runs_code_when_instantiated(&binary(
            r#"(component (component (core module $m (func $f) (start $f))))"#
        )));
        // Active element and data segments are set up from constants.
        assert!(!runs_code_when_instantiated(&binary(
            r#"(component (core module (memory 1) (table 1 funcref) (func $f)
                (elem (i32.const 0) func $f) (data (i32.const 0) "x")))"#
        )));
        assert!(runs_code_when_instantiated(b"not wasm"));
    }

    #[test]
    fn one_key_per_folder_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key(dir.path()).unwrap();
        assert_eq!(load_or_create_key(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(KEY_FILE);
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = load_or_create_key(dir.path()).unwrap_err().to_string();
            assert!(err.contains("0600"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::write(&path, b"short").unwrap();
            assert!(load_or_create_key(dir.path()).is_err());
        }
    }
}
