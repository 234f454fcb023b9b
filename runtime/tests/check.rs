//! `elements check`: the deploy's checks offline, on the real binary.

mod support;

use std::process::Command;

/// Runs `elements check ARGS`: (exit code, stdout, stderr).
fn check(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_elements"))
        .arg("check")
        .args(args)
        .output()
        .expect("running elements check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest_of(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(dir)
        .join("element.toml")
}

#[test]
fn a_good_component_passes_and_its_grants_are_listed() {
    let hello = support::guest("hello");
    let manifest = manifest_of("examples/hello");
    let (code, out, err) = check(&[hello.as_os_str(), manifest.as_os_str()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok: hello passes the deploy checks (served at /app/rest/hello)"),
        "{out}"
    );

    // The Roblox Kit needs its secret and asks for grants.
    let kit = support::guest("roblox-kit");
    let manifest = manifest_of("elements/roblox-kit");
    let (code, out, err) = check(&[
        kit.as_os_str(),
        manifest.as_os_str(),
        "--name".as_ref(),
        "roblox-kit".as_ref(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("required attribute \"dev.getelements.robloxkit.secret\" has no value"),
        "{err}"
    );
    assert!(out.contains("http.outbound:users.roblox.com"), "{out}");
    let (code, out, err) = check(&[
        kit.as_os_str(),
        manifest.as_os_str(),
        "--name".as_ref(),
        "roblox-kit".as_ref(),
        "--value".as_ref(),
        "dev.getelements.robloxkit.secret=s3cret".as_ref(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("served at /app/rest/roblox"), "{out}");
}

#[test]
fn a_broken_manifest_fails_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let hello = support::guest("hello");
    let cases = [
        ("prefix = [", "invalid"),
        (
            "[attributes.size]\ntype = \"integer\"\nmin = 1\nmax = 10\ndefault = 50\n",
            "size",
        ),
        ("grants = [\"no.such.grant\"]\n", "no.such.grant"),
        ("[events]\nsubscribe = [\"x.*\"]\n", "event-handler"),
    ];
    for (i, (manifest, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("m{i}.toml"));
        std::fs::write(&path, manifest).unwrap();
        let (code, out, err) = check(&[hello.as_os_str(), path.as_os_str()]);
        assert_eq!(code, 1, "{manifest}: {out}{err}");
        assert!(err.contains("error: "), "{manifest}: {err}");
        assert!(err.contains(needle), "{manifest}: expected {needle:?} in {err}");
        assert!(err.contains("a deploy would fail"), "{err}");
    }
}

#[test]
fn a_file_that_is_not_a_component_fails() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "this is text, not WebAssembly").unwrap();
    let (code, out, err) = check(&[not_wasm.as_os_str()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
    assert!(err.contains("notes.wasm"), "{err}");

    let (code, _, err) = check(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("usage: elements check"), "{err}");
}
