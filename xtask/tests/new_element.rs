//! `cargo xtask new-element`: the crate it creates builds and its test,
//! which runs the Element in the real runtime with elements-test, passes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target folder this test runs from (`target/debug/deps/..`): the new
/// crate builds there too, so the runtime it depends on is compiled once.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_owned()
}

#[test]
fn a_new_element_builds_and_its_test_passes() {
    let dir = tempfile_dir();
    let created = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-element", "notes-demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let crate_dir = dir.join("notes-demo");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "element.toml",
        "tests/element.rs",
        "Cargo.lock",
    ] {
        assert!(crate_dir.join(file).is_file(), "no {file}");
    }

    // A second time is refused rather than overwriting the author's work.
    let again = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-element", "notes-demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-element", "Bad Name"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(&cargo)
        .current_dir(&crate_dir)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", target_dir().join("guests"))
        .status()
        .unwrap();
    assert!(build.success(), "the new crate does not build for wasm32-wasip2");
    let test = Command::new(&cargo)
        .current_dir(&crate_dir)
        .args(["test", "--quiet"])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(out.contains("1 passed"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-new-element-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Path::new(&dir).is_dir());
    dir
}
