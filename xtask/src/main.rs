//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `run [SERVER FLAGS...]`: build the bundled and example Elements for
//!   `wasm32-wasip2`, copy them with their manifests into `./deploy`, and run
//!   the server (add `--release` before the flags for an optimized server).
//! - `test [CARGO TEST ARGS...]`: build the Elements the tests use and run the
//!   whole test suite: everything on SQLite, then the store, identity,
//!   deployment and fault suites against a MongoDB-wire server it starts (needs `python3` with `venv`; the
//!   server comes from PyPI). The browser tests drive Debian's `chromium`
//!   through `chromedriver`: when `/usr/bin/chromium` or `/usr/bin/chromedriver`
//!   is missing, it installs the `chromium` and `chromium-driver` packages with
//!   `apt-get` (through `sudo` when not root) and stops if that fails; the
//!   cluster tests run Debian's `nats-server`, installed the same way.
//! - `elements`: only build the Elements and fill `./deploy`.
//! - `bench`: run the benchmarks (release build), printing their figures.
//! - `new-element NAME [--dir DIR]`: create an Element crate in `DIR/NAME`
//!   (default: the current folder): `Cargo.toml`, `src/lib.rs`,
//!   `element.toml` and a test in `tests/` that runs it with `elements-test`.
//!   It builds and its test passes as created (`xtask/tests/new_element.rs`).
//!   An xtask rather than an `elements` subcommand: the new crate depends on
//!   this checkout's SDK and harness by path (neither is published), and only
//!   the checkout knows where it is; the `elements` binary may run anywhere.
//!
//! Only std: this crate must build in seconds on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "run" => run(&rest),
        "test" => test(&rest),
        "elements" => deploy_elements().map(|_| ()),
        "bench" => bench(&rest),
        "new-element" => new_element(&rest),
        _ => {
            eprintln!("usage: cargo xtask <run|test|elements|bench|new-element> [ARGS...]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // `cargo run` gives the running checkout's path; the one compiled in may
    // be another checkout's when build folders are shared (CI reuses one).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn status(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Installs the wasm target with rustup when it is missing.
fn ensure_wasm_target() -> Result<(), String> {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && Path::new(&libdir).exists() {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target with rustup");
    status(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Crates that are deployable Elements: folders under `elements/` and
/// `examples/` with an `element.toml` manifest.
fn element_crates() -> Vec<(String, PathBuf)> {
    let mut crates = Vec::new();
    for group in ["elements", "examples"] {
        let Ok(entries) = std::fs::read_dir(root().join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("element.toml").is_file()
                && let Some(name) = dir.file_name().and_then(|n| n.to_str())
            {
                crates.push((name.to_owned(), dir));
            }
        }
    }
    crates.sort();
    crates
}

/// Builds guest crates for wasm32-wasip2 (release) into `target/guests`.
fn build_guests(packages: &[String]) -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    let guest_target = target_dir().join("guests");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", WASM_TARGET, "--target-dir"])
        .arg(&guest_target);
    for p in packages {
        cmd.args(["-p", p]);
    }
    status(&mut cmd)?;
    Ok(guest_target.join(WASM_TARGET).join("release"))
}

/// Builds every Element and copies `NAME.wasm` + `NAME.toml` into `./deploy`.
fn deploy_elements() -> Result<PathBuf, String> {
    let crates = element_crates();
    let names: Vec<String> = crates.iter().map(|(n, _)| n.clone()).collect();
    let out = build_guests(&names)?;
    let deploy = root().join("deploy");
    std::fs::create_dir_all(&deploy).map_err(|e| format!("creating {}: {e}", deploy.display()))?;
    for (name, dir) in &crates {
        let wasm = out.join(format!("{}.wasm", name.replace('-', "_")));
        copy(&wasm, &deploy.join(format!("{name}.wasm")))?;
        copy(&dir.join("element.toml"), &deploy.join(format!("{name}.toml")))?;
        eprintln!("xtask: deployed {name} to {}", deploy.display());
    }
    Ok(deploy)
}

/// Copies by writing a temporary file and renaming it, so a server watching
/// the folder never sees half a file.
fn copy(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension("tmp-xtask");
    std::fs::copy(from, &tmp).map_err(|e| format!("copying {}: {e}", from.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("renaming to {}: {e}", to.display()))
}

fn run(args: &[String]) -> Result<(), String> {
    let deploy = deploy_elements()?;
    let (release, flags) = match args.first().map(String::as_str) {
        Some("--release") => (true, &args[1..]),
        _ => (false, args),
    };
    let mut cmd = cargo();
    cmd.args(["run", "-p", "elements-runtime", "--bin", "elements"]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--").arg("--deploy-dir").arg(&deploy).args(flags);
    status(&mut cmd)
}

/// The guest crates the test suite deploys.
fn test_guests() -> Vec<String> {
    let mut names: Vec<String> = element_crates().into_iter().map(|(n, _)| n).collect();
    names.push("misbehave".into());
    names.push("hostile".into());
    names.push("wasi-http".into());
    names
}

/// The whole suite: everything on the embedded SQLite store, then the
/// store's conformance suite, the identity suite and the fault tests against a
/// MongoDB-wire server (SecantusDB, see `scripts/mongodb-test-server`).
fn test(args: &[String]) -> Result<(), String> {
    ensure_browser()?;
    ensure_nats()?;
    build_guests(&test_guests())?;
    // The venv holds the real servers the tests talk to: SecantusDB (MongoDB
    // wire protocol) and aiosmtpd (SMTP); and schemathesis, which fuzzes the
    // OpenAPI documents (runtime/tests/fuzz_openapi.rs).
    status(Command::new(root().join("scripts/mongodb-test-server")).arg("install"))?;
    ensure_python_package("aiosmtpd==1.4.6")?;
    ensure_python_package("schemathesis==4.32.5")?;
    // The real Nakama JavaScript client, for `runtime/tests/identity_nakama_js.rs`.
    ensure_npm_package("@heroiclabs/nakama-js", "2.8.0")?;
    // Every failure, not just the first test binary's. The whole workspace
    // but the three test guests (they only build for wasm): the
    // Elements' own tests run natively, with the `elements-test` harness.
    let all = status(cargo().args(WORKSPACE_TESTS).args(args));
    let screenshots = target_dir().join("portal-screenshots");
    if screenshots.is_dir() {
        eprintln!(
            "xtask: the portal tests' screenshots are in {}",
            screenshots.display()
        );
    }
    all?;

    // One cargo invocation over the same packages as above, selecting
    // test targets: building a package alone would unify features
    // differently and recompile its dependencies.
    let mongo = MongoServer::start()?;
    let mut targets = test_files("store/tests", "");
    targets.extend(test_files("runtime/tests", "identity"));
    targets.extend(test_files("runtime/tests", "faults"));
    targets.extend(test_files("runtime/tests", "deployments"));
    let mut on_mongo = cargo();
    on_mongo.args(WORKSPACE_TESTS);
    for t in &targets {
        on_mongo.args(["--test", t]);
    }
    status(mongo.env(&mut on_mongo))?;
    Ok(())
}

/// `cargo test` over the workspace: its members but the test guests that
/// only build for wasm. The same package set for both runs, so features
/// unify the same way and nothing is compiled twice.
const WORKSPACE_TESTS: &[&str] = &[
    "test",
    "--no-fail-fast",
    "--workspace",
    "--exclude",
    "misbehave",
    "--exclude",
    "hostile",
    "--exclude",
    "wasi-http",
];

/// What the browser tests run (`runtime/tests/support/browser.rs`).
const BROWSER_BINARIES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];
/// What the cluster tests run (`runtime/tests/cluster.rs`).
const NATS_BINARIES: [&str; 1] = ["/usr/sbin/nats-server"];
const NATS_PACKAGES: [&str; 1] = ["nats-server"];

/// Installs Debian's chromium and its WebDriver when either is missing.
fn ensure_browser() -> Result<(), String> {
    ensure_debian(&BROWSER_BINARIES, &BROWSER_PACKAGES, "the browser tests")
}

/// Installs Debian's nats-server when it is missing.
fn ensure_nats() -> Result<(), String> {
    ensure_debian(&NATS_BINARIES, &NATS_PACKAGES, "the cluster tests")
}

/// Installs the Debian `packages` when any of `binaries` is missing.
fn ensure_debian(binaries: &[&str], packages: &[&str], needed_by: &str) -> Result<(), String> {
    if binaries.iter().all(|b| Path::new(b).exists()) {
        return Ok(());
    }
    let list = packages.join(" ");
    eprintln!("xtask: installing {list} with apt-get for {needed_by}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        // `env` inside sudo, which would drop the variable otherwise: no
        // prompts (debconf's included), as CI has no terminal.
        let mut cmd = Command::new(if root { "env" } else { "sudo" });
        if !root {
            cmd.arg("env");
        }
        cmd.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]).args(args);
        status(&mut cmd)
    };
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    apt(&["update"]).and_then(|()| apt(&install)).map_err(|e| {
        format!(
            "{needed_by} need the Debian packages {list} and installing them failed \
             ({e}); install them by hand: sudo apt-get install {list}"
        )
    })?;
    match binaries.iter().find(|b| !Path::new(b).exists()) {
        Some(missing) => Err(format!("{missing} is still missing after installing {list}")),
        None => Ok(()),
    }
}

/// The test venv (same default as `scripts/mongodb-test-server`).
fn venv() -> PathBuf {
    std::env::var_os("ELEMENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/elements/venv")
        })
}

/// Installs `requirement` into the test venv unless it is there already.
fn ensure_python_package(requirement: &str) -> Result<(), String> {
    let python = venv().join("bin/python");
    let (name, version) = requirement.split_once("==").unwrap_or((requirement, ""));
    let shown = Command::new(&python).args(["-m", "pip", "show", name]).output();
    if let Ok(out) = shown
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == format!("Version: {version}"))
    {
        return Ok(());
    }
    eprintln!("xtask: installing {requirement} into {}", venv().display());
    status(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        requirement,
    ]))
}

/// Where npm packages for the tests go (`ELEMENTS_NPM` overrides).
fn npm_dir() -> PathBuf {
    std::env::var_os("ELEMENTS_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/elements/npm")
        })
}

/// Installs `name@version` under [`npm_dir`] unless that version is there.
fn ensure_npm_package(name: &str, version: &str) -> Result<(), String> {
    let manifest = npm_dir().join("node_modules").join(name).join("package.json");
    // npm writes `"version": "X"` on a line of its own.
    let installed = std::fs::read_to_string(&manifest).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim() == format!("\"version\": \"{version}\","))
    });
    if installed {
        return Ok(());
    }
    std::fs::create_dir_all(npm_dir()).map_err(|e| format!("cannot create {}: {e}", npm_dir().display()))?;
    eprintln!("xtask: installing {name}@{version} into {}", npm_dir().display());
    status(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(npm_dir())
            .arg(format!("{name}@{version}")),
    )
}

/// Integration test targets in `dir` whose names start with `prefix`.
fn test_files(dir: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n.starts_with(prefix) && n.ends_with(".rs"))
                .map(|n| n.trim_end_matches(".rs").to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A SecantusDB server started by `scripts/mongodb-test-server`, stopped on drop.
struct MongoServer {
    vars: Vec<(String, String)>,
}

impl MongoServer {
    fn start() -> Result<MongoServer, String> {
        let script = root().join("scripts/mongodb-test-server");
        let out = Command::new(&script)
            .arg("start")
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err("the MongoDB-wire test server did not start (see above)".into());
        }
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Ok(MongoServer { vars })
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `cmd` with the server's variables set and MongoDB required.
    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ELEMENTS_REQUIRE_MONGODB", "1")
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        if let Some(pid) = self.var("ELEMENTS_MONGODB_PID") {
            let mut stop = Command::new(root().join("scripts/mongodb-test-server"));
            stop.arg("stop").arg(pid);
            if let Some(storage) = self.var("ELEMENTS_MONGODB_STORAGE") {
                stop.arg(storage);
            }
            let _ = stop.status();
        }
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    build_guests(&test_guests())?;
    status(cargo().args(["bench", "-p", "elements-runtime"]).args(args))
}

/// `new-element NAME [--dir DIR]`.
fn new_element(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask new-element NAME [--dir DIR]";
    let mut name = None;
    let mut dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(args.next().ok_or(usage)?)),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}; {usage}")),
            n if name.is_none() => name = Some(n.to_owned()),
            _ => return Err(usage.into()),
        }
    }
    let name = name.ok_or(usage)?;
    // A crate name that is also a usable Element name and prefix.
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a usable name: 1 to 48 lower-case letters, digits, '-' and '_', starting with a letter"
        ));
    }
    let base = match dir {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(|e| format!("the current folder: {e}"))?,
    };
    let crate_dir = base.join(&name);
    if crate_dir.exists() {
        return Err(format!("{} exists already", crate_dir.display()));
    }
    for (path, text) in scaffold(&name)? {
        let path = crate_dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    eprintln!(
        "xtask: created the Element {name} in {}\n  test it:   cd {} && cargo test\n  build it:  cargo build --release --target wasm32-wasip2\n  check it:  elements check target/wasm32-wasip2/release/{}.wasm element.toml",
        crate_dir.display(),
        crate_dir.display(),
        name.replace('-', "_")
    );
    Ok(())
}

/// The files of a new Element crate, by path below its folder.
fn scaffold(name: &str) -> Result<Vec<(&'static str, String)>, String> {
    let root = root();
    let path_of = |dir: &str| root.join(dir).display().to_string().replace('\\', "/");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("reading the workspace's Cargo.toml: {e}"))?;
    // The workspace's profiles: without them the harness's wasmtime compiles
    // Elements with an unoptimized Cranelift (seconds per component).
    let profiles = workspace
        .find("[profile.")
        .map(|at| workspace[at..].to_owned())
        .unwrap_or_default();
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
elements-sdk = {{ path = "{sdk}" }}
serde_json = "1"

[dev-dependencies]
# Runs the built component in the real runtime in `cargo test` (tests/).
elements-test = {{ path = "{harness}" }}

# A workspace of its own; remove this line to make the crate a member of
# an enclosing workspace instead.
[workspace]

{profiles}"#,
        sdk = path_of("sdk-guest"),
        harness = path_of("elements-test"),
    );
    let lib_rs = format!(
        r#"//! The {name} Element.
//!
//! * `GET /hello`: a greeting (the `greeting` attribute).
//! * `POST /notes` `{{"text": "..."}}`: stores a note (documents).
//! * `GET /notes`: the notes.

use elements_sdk::prelude::*;

fn router() -> Router {{
    Router::new()
        .get("/hello", |_req: Request| {{
            json!({{"message": format!("{{}} from {name}!", attributes::get_or("greeting", "Hello"))}})
        }})
        .post("/notes", add_note)
        .get("/notes", notes)
}}

fn add_note(req: Request) -> Result<Response> {{
    let body: serde_json::Value = req.json()?;
    let text = body["text"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Error::bad_request("`text` must be a non-empty string"))?;
    let stored = documents::collection("notes").insert(&json!({{"text": text}}))?;
    info!("stored a note of {{}} bytes", text.len());
    Ok(Response::json(&stored).with_status(201))
}}

fn notes(_req: Request) -> Result<Response> {{
    let notes = documents::collection("notes").find(json!({{}})).all()?;
    Ok(Response::json(&notes))
}}

elements_sdk::export_element!(router);
"#
    );
    let element_toml = format!(
        r#"# The {name} Element's manifest: deployed as {name}.toml beside {name}.wasm.
prefix = "{name}"

[attributes.greeting]
default = "Hello"
description = "The word GET /hello greets with."
"#
    );
    let test_rs = format!(
        r#"//! The {name} Element in the real runtime (elements-test).

use elements_test::Harness;
use serde_json::json;

#[test]
fn greets_and_keeps_notes() {{
    // Builds this crate for wasm32-wasip2 and deploys it with element.toml.
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR"))
        .attribute("greeting", "Hi")
        .start();

    let hello = harness.get("/hello").send();
    assert_eq!(hello.status(), 200, "{{}}", hello.text());
    assert_eq!(hello.json(), json!({{"message": "Hi from {name}!"}}));

    let added = harness.post("/notes").json(&json!({{"text": "first"}})).send();
    assert_eq!(added.status(), 201, "{{}}", added.text());
    let bad = harness.post("/notes").json(&json!({{"text": ""}})).send();
    assert_eq!(bad.status(), 400, "{{}}", bad.text());

    let notes = harness.get("/notes").send().json();
    assert_eq!(notes[0]["text"], "first", "{{notes}}");
    assert!(harness.logged("stored a note of 5 bytes"), "{{:?}}", harness.logs());
}}
"#
    );
    let mut files = vec![
        ("Cargo.toml", cargo_toml),
        ("src/lib.rs", lib_rs),
        ("element.toml", element_toml),
        ("tests/element.rs", test_rs),
        (".gitignore", "/target\n".to_owned()),
    ];
    // The checkout's lock file: the same dependency versions the SDK and the
    // harness are built and tested with (cargo drops what the crate doesn't use).
    if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
        files.push(("Cargo.lock", lock));
    }
    Ok(files)
}
