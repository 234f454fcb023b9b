//! Compiling components, with an on-disk cache of the compiled code.
//!
//! Compiling a component takes tens to hundreds of milliseconds; loading a
//! compiled one takes well under one. Entries are keyed by the component's
//! SHA-256 and the engine's compatibility hash (wasmtime version, target and
//! settings), and end with a SHA-256 of their own contents: an entry that is
//! unreadable, corrupted or from another engine is discarded and recompiled,
//! never loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const DIGEST_LEN: usize = 32;

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
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// The SHA-256 of a component, as lowercase hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// A cache in `dir` for code compiled by `engine`.
    pub fn new(engine: &Engine, dir: impl Into<PathBuf>) -> CompileCache {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir: dir.into(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
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
            Ok(entry) => match load_entry(engine, &entry) {
                Ok(component) => return Ok((component, Outcome::Cached)),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "discarding compiled-code cache entry");
                    let _ = std::fs::remove_file(&path);
                    outcome = Outcome::Recompiled(reason);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => outcome = Outcome::Recompiled(format!("unreadable: {e}")),
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compiled-code cache entry");
        }
        Ok((component, outcome))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let mut code = component.serialize()?;
        let digest = Sha256::digest(&code);
        code.extend_from_slice(&digest);
        // Owner only: the cache holds native code the server will run.
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&self.dir)?;
        // Write then rename, so a reader never sees half an entry.
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", uuid::Uuid::new_v4(), std::process::id()));
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        std::io::Write::write_all(&mut file.open(&tmp)?, &code)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(())
    }
}

fn load_entry(engine: &Engine, entry: &[u8]) -> Result<Component, String> {
    if entry.len() <= DIGEST_LEN {
        return Err("truncated".into());
    }
    let (code, digest) = entry.split_at(entry.len() - DIGEST_LEN);
    if Sha256::digest(code).as_slice() != digest {
        return Err("checksum mismatch (corrupted)".into());
    }
    // SAFETY: `deserialize` trusts its input to be code wasmtime produced. The
    // entry's checksum matches what this cache wrote after `serialize`, and
    // its name binds it to this engine's configuration, which wasmtime
    // checks again.
    unsafe { Component::deserialize(engine, code) }.map_err(|e| format!("incompatible: {e:#}"))
}
